module;
#include <string>
#include <string_view>
export module core.strings;

export namespace core {
std::string upper(std::string_view text);
std::string spaced(std::string_view text, int gap);
const char* built_with();
}  // namespace core
