#include <cstdio>
#include <cstring>
#include <string>
#include <zlib.h>
import squeeze;

int main() {
    int failures = 0;
    for (std::string text : {std::string(), std::string("a"), std::string(100000, 'x')}) {
        const std::string back = squeeze::decompress(squeeze::compress(text), text.size());
        if (back != text) { std::printf("round trip of %zu bytes failed\n", text.size()); ++failures; }
    }
    // The header the units compiled against and the library the test loaded agree.
    if (std::strncmp(squeeze::library_version(), ZLIB_VERSION, 4) != 0) {
        std::printf("zlib %s loaded, %s compiled\n", squeeze::library_version(), ZLIB_VERSION);
        ++failures;
    }
    std::printf("%s\n", failures ? "FAILED" : "ok");
    return failures != 0;
}
