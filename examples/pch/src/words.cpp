#include "stats.h"
namespace stats {
std::vector<std::string> words(const std::string& text) {
    static const std::regex word("[A-Za-z']+");
    std::vector<std::string> out;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), word); it != std::sregex_iterator(); ++it) {
        std::string w = it->str();
        std::transform(w.begin(), w.end(), w.begin(), [](unsigned char c) { return std::tolower(c); });
        out.push_back(std::move(w));
    }
    return out;
}
}  // namespace stats
