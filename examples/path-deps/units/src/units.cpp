module units;

namespace units {
Metres feet_to_metres(double feet) { return Metres{feet * 0.3048}; }
}
