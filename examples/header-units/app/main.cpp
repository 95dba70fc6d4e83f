import text;
import count;
import banner;
import <cstdio>;
import <banner/style.h>;

int sum_to(int n);

// A macro of a header unit decides what this unit imports and compiles.
#if BANNER_LOUD
static const char* volume = "loud";
#else
static const char* volume = "quiet";
#endif

int main() {
  std::string s = shout("hi");
  std::printf("%s %d %s %s %d\n", s.c_str(), repeats(), frame("ok").c_str(), volume, sum_to(4));
  return 0;
}
