/* A test written in C: the library's C API against known values. */
#include <stdio.h>
#include <string.h>
#include "checksums.h"

int main(void) {
    const char *text = "The quick brown fox jumps over the lazy dog";
    int failures = 0;
    uint32_t crc = cs_crc32((const unsigned char *)text, strlen(text));
    uint32_t adler = cs_adler32((const unsigned char *)text, strlen(text));
    if (crc != 0x414FA339u) { printf("crc32: got %08x\n", (unsigned)crc); ++failures; }
    if (adler != 0x5BDC0FDAu) { printf("adler32: got %08x\n", (unsigned)adler); ++failures; }
    if (cs_c_standard() != 201710L) { printf("standard: %ld\n", cs_c_standard()); ++failures; }
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures != 0;
}
