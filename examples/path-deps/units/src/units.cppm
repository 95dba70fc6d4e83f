export module units;

export namespace units {
struct Metres {
    double value;
};
Metres feet_to_metres(double feet);
}
