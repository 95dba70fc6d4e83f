import stamped;
#include <cstdio>

int main() {
  std::printf("stamped %s (%s)\n", stamped::version, stamped::codename);
  return 0;
}
