#include <cstdio>
import text.fraction;

int main() {
    std::printf("42/56 = %s, 12^2 = %s\n", text::reduced(42, 56).c_str(), text::squared(12).c_str());
    return 0;
}
