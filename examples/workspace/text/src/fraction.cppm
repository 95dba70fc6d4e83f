// text.fraction imports core.math from another member.
module;
#include <string>
export module text.fraction;
import core.math;

export namespace text {
inline std::string reduced(long n, long d) {
    long g = core::gcd(n, d);
    return std::to_string(n / g) + "/" + std::to_string(d / g);
}
inline std::string squared(long x) { return std::to_string(core::square(x)); }
}
