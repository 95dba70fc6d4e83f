module numbers;

namespace numbers {
int triangle(int n) { return n * (n + 1) / 2; }
}
