// Private to the engine package: not in `public-modules`.
export module engine.detail;

export namespace engine::detail {
int step(int state) { return state * 2 + 1; }
}
