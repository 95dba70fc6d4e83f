// An implementation unit may use the library's private modules.
module engine;
import engine.detail;

namespace engine {
int simulate(int frames) {
    int state = 0;
    for (int f = 0; f < frames; ++f) state = detail::step(state);
    return state;
}
}  // namespace engine
