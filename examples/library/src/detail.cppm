// Internal partition: helpers that are not exported from the module.
module;
#include <cstdio>
#include <string>
module geometry:detail;

namespace geometry::detail {
constexpr double pi = 3.14159265358979323846;

inline std::string fixed2(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f", v);
    return buf;
}
}
