// A plain translation unit that imports the module.
#include <cstdio>
import hello;

int main(int argc, char** argv) {
    const char* who = argc > 1 ? argv[1] : "modules";
    std::puts(hello::greet(who).c_str());
    return 0;
}
