#include <cstdio>
#include <string>
import checksum;

int main(int argc, char** argv) {
    std::string text = argc > 1 ? argv[1] : "hello";
    std::printf("crc32(%s) = %08x\n", text.c_str(), checksum::crc32(text));
    std::printf("adler32(%s) = %08x\n", text.c_str(), checksum::adler32(text));
    std::printf("C units compiled as C%ld\n", (checksum::c_standard() / 100) % 100);
}
