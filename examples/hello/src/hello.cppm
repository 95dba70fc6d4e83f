// Primary module interface unit of `hello`.
module;
#include <string>
#include <string_view>
export module hello;

export namespace hello {
/// A greeting for `name`.
std::string greet(std::string_view name);
}
