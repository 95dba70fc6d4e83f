export module sorted;
export import <vector>;
import <algorithm>;
import "settings.h";

export std::vector<int> sorted(std::vector<int> v) {
#if SORTED_DESCENDING
  std::sort(v.rbegin(), v.rend());
#else
  std::sort(v.begin(), v.end());
#endif
  return v;
}
