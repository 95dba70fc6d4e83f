// Exported partition: the shape types and their area.
export module geometry:shapes;

export namespace geometry {
enum class Kind { Circle, Rectangle, Triangle };

struct Shape {
    Kind kind;
    double a;
    double b;
};

double area(const Shape& s);
}
