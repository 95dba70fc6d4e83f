#include <cstdio>
import units;
import report;

int main() {
    std::puts(report::line("ten feet", units::feet_to_metres(10.0)).c_str());
    return 0;
}
