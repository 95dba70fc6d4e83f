#include "stats.h"
namespace stats {
std::string format(const std::vector<std::pair<std::string, std::size_t>>& rows) {
    std::ostringstream out;
    for (const auto& [word, count] : rows) out << std::setw(8) << word << ' ' << count << '\n';
    return out.str();
}
}  // namespace stats
