#include <cstdio>
#include <cstring>
#include <string>
import settings;
import core.strings;

int main() {
    const char* expected = MODE == 1 ? "fast" : "safe";
    const bool ok = settings::mode() == MODE && std::strcmp(settings::name(), expected) == 0 &&
                    core::upper(expected) == (MODE == 1 ? "FAST" : "SAFE");
    std::printf("mode %d: %s (%s)\n", settings::mode(), settings::name(), ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
