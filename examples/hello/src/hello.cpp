// Implementation unit of `hello`: implicitly imports the interface.
module;
#include <string>
#include <string_view>
module hello;

namespace hello {
std::string greet(std::string_view name) {
    std::string out = "Hello, ";
    out += name;
    out += "!";
    return out;
}
}
