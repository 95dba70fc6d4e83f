export module text;
export import <string>;
import <vector>;
import <banner/style.h>;

export std::string shout(const std::string& word) {
  std::vector<std::string> parts(BANNER_REPEAT, word);
  std::string out;
  for (const auto& p : parts) out += p + banner_mark();
  return out;
}
