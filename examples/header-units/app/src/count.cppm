export module count;
import <vector>;
import <banner/style.h>;

export int repeats() {
  std::vector<int> v(BANNER_REPEAT, 1);
  return static_cast<int>(v.size());
}
