// core.math: the bottom of the workspace.
export module core.math;

export namespace core {
long gcd(long a, long b);
constexpr long square(long x) { return x * x; }
}
