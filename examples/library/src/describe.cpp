// Implementation unit of `geometry` (descriptions), using the internal partition.
module;
#include <string>
module geometry;
import :detail;

namespace geometry {
std::string describe(const Shape& s) {
    const char* name = s.kind == Kind::Circle      ? "circle"
                       : s.kind == Kind::Rectangle ? "rectangle"
                                                   : "triangle";
    return std::string(name) + " of area " + detail::fixed2(area(s)) + " " GEOMETRY_UNITS "^2";
}
}
