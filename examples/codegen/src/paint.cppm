// A module of the package that uses the generated one.
module;
#include <cstdio>
export module paint;
import colours;

export void swatch(const char* name) {
  const Colour* c = find_colour(name);
  if (c == nullptr) {
    std::printf("%-8s unknown\n", name);
    return;
  }
  std::printf("%-8s #%02x%02x%02x\n", c->name, c->r, c->g, c->b);
}
