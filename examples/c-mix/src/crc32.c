/* CRC-32 (IEEE 802.3), bitwise: C, compiled with -std=c17. */
#include "checksums.h"

uint32_t cs_crc32(const unsigned char *data, size_t len) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; ++i) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; ++bit) {
            uint32_t mask = -(crc & 1u);
            crc = (crc >> 1) ^ (0xEDB88320u & mask);
        }
    }
    return ~crc;
}

long cs_c_standard(void) { return __STDC_VERSION__; }
