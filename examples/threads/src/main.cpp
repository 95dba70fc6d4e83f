#include <cstdio>
import workers;

int main() {
    const auto r = workers::parallel_sum(1'000'000, 4);
    std::printf("sum of 0..999999 on 4 threads = %llu (%d threads named)\n",
                static_cast<unsigned long long>(r.sum), r.named);
    return r.sum == 499999500000ull && r.named == 4 ? 0 : 1;
}
