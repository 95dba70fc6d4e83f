#include <cstdio>
#include <core/config.h>  // core's public include directory reaches text's users
#if defined(CORE_BUILDING) || defined(TEXT_BUILDING)
#error "private defines of the libraries must not reach the binary"
#endif
import text;

int main() {
    std::printf("%s\n", text::banner(APP_NAME).c_str());
    std::printf("%s\n", text::legacy("old").c_str());
    std::printf("built with %s\n", core::built_with());
}
