module;
#include <string>
#include <string_view>
#include <core/config.h>
#if defined(CORE_BUILDING)
#error "core's private define must not reach text"
#endif
#if !defined(TEXT_BUILDING)
#error "TEXT_BUILDING is text's own define"
#endif
export module text;
export import core.strings;

export namespace text {
std::string banner(std::string_view title);
std::string legacy(std::string_view title);
}  // namespace text

namespace text {
std::string banner(std::string_view title) { return "== " + core::upper(title) + " =="; }
}  // namespace text
