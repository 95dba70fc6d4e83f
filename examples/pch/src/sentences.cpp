#include "stats.h"
namespace stats {
std::size_t sentences(const std::string& text) {
    std::optional<char> last;
    std::size_t n = 0;
    for (char c : text) {
        if ((c == '.' || c == '!' || c == '?') && last != c) ++n;
        last = c;
    }
    return n;
}
std::set<char> letters(const std::vector<std::string>& words) {
    std::set<char> out;
    for (const auto& w : words) out.insert(w.begin(), w.end());
    return out;
}
}  // namespace stats
