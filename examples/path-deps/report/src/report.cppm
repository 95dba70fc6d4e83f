module;
#include <cstdio>
#include <string>
export module report;
import units;

export namespace report {
inline std::string line(const char* label, units::Metres m) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s: %.3f m", label, m.value);
    return buf;
}
}
