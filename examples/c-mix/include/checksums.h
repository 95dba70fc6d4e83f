/* The C API of the checksums library. */
#ifndef CHECKSUMS_H
#define CHECKSUMS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

uint32_t cs_crc32(const unsigned char *data, size_t len);
uint32_t cs_adler32(const unsigned char *data, size_t len);
/* The C standard the library was compiled with (__STDC_VERSION__). */
long cs_c_standard(void);

#ifdef __cplusplus
}
#endif

#endif
