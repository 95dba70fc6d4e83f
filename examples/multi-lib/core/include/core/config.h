// core's public header, reached through its `public-include-dirs`.
#pragma once
#define TOOLKIT_CORE_VERSION "0.2.0"
#if !defined(TOOLKIT_CORE)
#error "TOOLKIT_CORE is one of core's public defines: every user of core has it"
#endif
