// A C++ module over the C library.
module;
#include <cstdint>
#include <string_view>
#include "checksums.h"
export module checksum;

export namespace checksum {

std::uint32_t crc32(std::string_view text) {
    return cs_crc32(reinterpret_cast<const unsigned char*>(text.data()), text.size());
}

std::uint32_t adler32(std::string_view text) {
    return cs_adler32(reinterpret_cast<const unsigned char*>(text.data()), text.size());
}

long c_standard() { return cs_c_standard(); }

}  // namespace checksum
