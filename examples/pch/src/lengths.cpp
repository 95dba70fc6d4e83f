#include "stats.h"
namespace stats {
double mean_length(const std::vector<std::string>& words) {
    if (words.empty()) return 0;
    const auto total = std::accumulate(words.begin(), words.end(), std::size_t{0},
                                       [](std::size_t s, const std::string& w) { return s + w.size(); });
    return static_cast<double>(total) / static_cast<double>(words.size());
}
std::string longest(const std::vector<std::string>& words) {
    auto it = std::max_element(words.begin(), words.end(),
                               [](const auto& a, const auto& b) { return a.size() < b.size(); });
    return it == words.end() ? std::string() : *it;
}
}  // namespace stats
