// Sum a range on several threads: std::thread for the work, pthreads for naming them.
module;
#include <pthread.h>
#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>
export module workers;

export namespace workers {

struct Result {
    std::uint64_t sum;
    int named;  // threads whose pthread name was set and read back
};

Result parallel_sum(std::uint64_t n, int threads) {
    std::atomic<std::uint64_t> total{0};
    std::atomic<int> named{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            const std::string name = "worker-" + std::to_string(t);
            char back[16] = {};
            if (pthread_setname_np(pthread_self(), name.c_str()) == 0 &&
                pthread_getname_np(pthread_self(), back, sizeof back) == 0 && name == back)
                ++named;
            std::uint64_t local = 0;
            for (std::uint64_t i = t; i < n; i += threads) local += i;
            total += local;
        });
    }
    for (auto& th : pool) th.join();
    return {total.load(), named.load()};
}

}  // namespace workers
