#include "stats.h"
namespace stats {
std::map<std::string, std::size_t> frequencies(const std::vector<std::string>& words) {
    std::unordered_map<std::string, std::size_t> counts;
    for (const auto& w : words) ++counts[w];
    return {counts.begin(), counts.end()};
}
}  // namespace stats
