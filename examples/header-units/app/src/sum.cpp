// The same standard headers, included textually: a plain unit beside the header units.
#include <numeric>
#include <vector>

int sum_to(int n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 1);
  return std::accumulate(v.begin(), v.end(), 0);
}
