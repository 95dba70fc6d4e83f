#include <cstdio>
import colours;
import paint;

int main() {
  std::printf("%d colours\n", colour_count);
  for (const Colour& c : table) swatch(c.name);
  swatch("mauve");
  return 0;
}
