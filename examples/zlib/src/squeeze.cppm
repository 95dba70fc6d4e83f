// Compression with zlib behind a module interface.
module;
#include <stdexcept>
#include <string>
#include <zlib.h>
export module squeeze;

export namespace squeeze {

std::string compress(const std::string& text, int level = Z_BEST_COMPRESSION) {
    uLongf size = compressBound(text.size());
    std::string out(size, '\0');
    int rc = compress2(reinterpret_cast<Bytef*>(out.data()), &size,
                       reinterpret_cast<const Bytef*>(text.data()), text.size(), level);
    if (rc != Z_OK) throw std::runtime_error("compress2 failed");
    out.resize(size);
    return out;
}

std::string decompress(const std::string& data, std::size_t original) {
    std::string out(original, '\0');
    uLongf size = original;
    int rc = uncompress(reinterpret_cast<Bytef*>(out.data()), &size,
                        reinterpret_cast<const Bytef*>(data.data()), data.size());
    if (rc != Z_OK) throw std::runtime_error("uncompress failed");
    out.resize(size);
    return out;
}

const char* library_version() { return zlibVersion(); }

}  // namespace squeeze
