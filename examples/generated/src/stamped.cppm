export module stamped;
export import :version;
