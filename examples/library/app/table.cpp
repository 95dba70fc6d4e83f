// A plain translation unit of the binary.
#include <cstdio>
import geometry;

void print_table(const geometry::Shape* shapes, int count) {
    for (int i = 0; i < count; ++i) std::printf("%d: %s\n", i, geometry::describe(shapes[i]).c_str());
}
