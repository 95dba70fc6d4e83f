// Imported as a header unit: `import <banner/style.h>;`. Its macros reach the importer.
#pragma once
#define BANNER_REPEAT 2
#define BANNER_LOUD 1
inline const char* banner_mark() { return "!"; }
