// Implementation unit of `geometry` (areas).
module geometry;
import :detail;

namespace geometry {
double area(const Shape& s) {
    switch (s.kind) {
    case Kind::Circle:
        return detail::pi * s.a * s.a;
    case Kind::Rectangle:
        return s.a * s.b;
    case Kind::Triangle:
        return 0.5 * s.a * s.b;
    }
    return 0.0;
}

double total_area(const Shape* shapes, int count) {
    double sum = 0.0;
    for (int i = 0; i < count; ++i) sum += area(shapes[i]);
    return sum;
}
}
