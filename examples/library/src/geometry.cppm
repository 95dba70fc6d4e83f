// Primary interface: re-exports both exported partitions and uses the internal one.
export module geometry;
export import :shapes;
export import :format;
import :detail;

export namespace geometry {
/// The total area of a list of shapes.
double total_area(const Shape* shapes, int count);
/// The library's version, checked against the manifest by the tests.
constexpr const char* version() { return "1.2.0"; }
}
