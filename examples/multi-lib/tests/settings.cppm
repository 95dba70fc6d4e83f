// One module source, built twice with different defines (one per test).
export module settings;

export namespace settings {
constexpr int mode() { return MODE; }
constexpr const char* name() {
#if MODE == 1
    return "fast";
#else
    return "safe";
#endif
}
}  // namespace settings
