// The public interface: it does not import engine.detail, so importers never need it.
export module engine;

export namespace engine {
int simulate(int frames);
}
