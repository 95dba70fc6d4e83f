#include <cstdio>
import engine;

int main() {
    std::printf("after 5 frames: %d\n", engine::simulate(5));
}
