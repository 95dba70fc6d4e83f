// A module that imports its own package's header as a header unit, and re-exports a
// system header unit to its importers.
export module banner;
export import <string>;
import <banner/style.h>;

export std::string frame(const std::string& s) {
  std::string out;
  for (int i = 0; i < BANNER_REPEAT; ++i) out += s + banner_mark();
  return out;
}
