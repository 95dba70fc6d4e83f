#include "stats.h"
namespace stats {
std::vector<std::pair<std::string, std::size_t>> top(const std::map<std::string, std::size_t>& f, std::size_t n) {
    std::vector<std::pair<std::string, std::size_t>> rows(f.begin(), f.end());
    std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    if (rows.size() > n) rows.resize(n);
    return rows;
}
}  // namespace stats
