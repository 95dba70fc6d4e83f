#include <cstdio>
import geometry;

void print_table(const geometry::Shape* shapes, int count);

int main() {
    const geometry::Shape shapes[] = {
        {geometry::Kind::Circle, 1.0, 0.0},
        {geometry::Kind::Rectangle, 2.0, 3.0},
        {geometry::Kind::Triangle, 4.0, 5.0},
    };
    print_table(shapes, 3);
    std::printf("total %.2f (geometry %s)\n", geometry::total_area(shapes, 3), geometry::version());
    return 0;
}
