// Compiled with one more define than the rest of `text` (a [[lib.overrides]] entry).
module;
#include <string>
#include <string_view>
#if LEGACY_SPACING != 2
#error "the override's define is missing"
#endif
module text;

namespace text {
std::string legacy(std::string_view title) { return core::spaced(title, LEGACY_SPACING); }
}  // namespace text
