#include <cstdio>
#include <string>
import squeeze;

int main(int argc, char** argv) {
    std::string text;
    for (int i = 0; i < 64; ++i) text += argc > 1 ? argv[1] : "all work and no play ";
    const std::string packed = squeeze::compress(text);
    const std::string back = squeeze::decompress(packed, text.size());
    std::printf("%zu bytes -> %zu bytes -> %zu bytes (%s)\n", text.size(), packed.size(),
                back.size(), back == text ? "round trip ok" : "MISMATCH");
    return back == text ? 0 : 1;
}
