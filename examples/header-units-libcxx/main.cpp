import sorted;
import <cstdio>;

int main() {
  for (int x : sorted({3, 1, 2})) std::printf("%d ", x);
#ifdef _LIBCPP_VERSION
  std::printf("(libc++)\n");
#else
  std::printf("(libstdc++)\n");
#endif
  return 0;
}
