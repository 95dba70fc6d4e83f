/* Adler-32 (RFC 1950). A designated initializer keeps this file C-only. */
#include "checksums.h"

struct adler { uint32_t a, b; };

uint32_t cs_adler32(const unsigned char *data, size_t len) {
    struct adler s = { .a = 1, .b = 0 };
    for (size_t i = 0; i < len; ++i) {
        s.a = (s.a + data[i]) % 65521u;
        s.b = (s.b + s.a) % 65521u;
    }
    return (s.b << 16) | s.a;
}
