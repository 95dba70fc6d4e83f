module;
#include <cctype>
#include <string>
#include <string_view>
#include <core/config.h>
#if !defined(CORE_BUILDING)
#error "CORE_BUILDING is core's private define: its own units have it"
#endif
module core.strings;

namespace core {
std::string upper(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

std::string spaced(std::string_view text, int gap) {
    std::string out;
    for (char c : text) {
        if (!out.empty()) out.append(static_cast<std::size_t>(gap), ' ');
        out += c;
    }
    return out;
}

const char* built_with() { return "core " TOOLKIT_CORE_VERSION; }
}  // namespace core
