// A test binary (`cmod test`): it checks the library through its public interface and
// passes when it exits with status 0.
#include <cmath>
#include <cstdio>
#include <string>
import geometry;

static int failures = 0;

static void check(bool ok, const char* what) {
    std::printf("%s: %s\n", ok ? "ok" : "FAILED", what);
    if (!ok) ++failures;
}

int main() {
    const geometry::Shape square{geometry::Kind::Rectangle, 2.0, 2.0};
    const geometry::Shape triangle{geometry::Kind::Triangle, 3.0, 4.0};
    const geometry::Shape both[] = {square, triangle};
    check(geometry::area(square) == 4.0, "a 2 x 2 rectangle has area 4");
    check(geometry::area(triangle) == 6.0, "a 3-4 right triangle has area 6");
    check(std::fabs(geometry::total_area(both, 2) - 10.0) < 1e-12, "areas add up");
    check(geometry::describe(square).find("rectangle") != std::string::npos,
          "a rectangle is described as one");
    return failures == 0 ? 0 : 1;
}
