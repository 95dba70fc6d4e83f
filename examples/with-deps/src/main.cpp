#include <cstdio>
import greeting;
import numbers;
import colors;

int main() {
    std::printf("%s\n", greeting::hello("deps").c_str());
    std::printf("numbers %s: triangle(10) = %d\n", numbers::version(), numbers::triangle(10));
    std::printf("%s, %s\n", colors::release(), colors::name(colors::Color::Teal));
    return 0;
}
