// Exported partition: turning shapes into text.
module;
#include <string>
export module geometry:format;
import :shapes;

export namespace geometry {
std::string describe(const Shape& s);
}
