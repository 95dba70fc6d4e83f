#!/usr/bin/env python3
"""Generate a synthetic C++20 modules project for the build benchmark.

One output directory holds the same sources twice described: a `cmod.toml` for
cmod and a `CMakeLists.txt` for CMake (>= 3.28, `FILE_SET CXX_MODULES`). Both
build one static library holding every module plus one executable, `synth`,
that prints a checksum, so the two builds can be compared by running them.

Module `mNN` (NN = 0 .. modules-1) consists of:

* `src/mNN/mNN.cppm`     primary interface: `export import`s every exported
                         partition, imports the internal partition;
* `src/mNN/pK.cppm`      exported partitions `mNN:pK`; `p0` imports the
                         `fan-in` earlier modules this module depends on;
* `src/mNN/detail.cppm`  internal partition `mNN:detail`;
* `src/mNN/implK.cpp`    implementation units; `impl0` imports the same earlier
                         modules and calls their functions.

Plain TUs (`src/plain/plainK.cpp`) import one module each and are called from
`main.cpp`, which imports every module no other module imports ("top" modules).
Every unit evaluates a constexpr table and instantiates a template chain whose
size scales with `--work`, so compiles cost a realistic, small amount of time.

`--edit-impl DIR --edit-value N` rewrites one marked statement in the body of
the last module's `impl0.cpp` (the benchmark's incremental edit).
"""

import argparse
import random
import re
import shutil
import sys
from pathlib import Path

EDIT_MARKER = "// bench:edit"
EDIT_LINE = re.compile(r"x \+= \d+ULL; " + re.escape(EDIT_MARKER))
U64 = "using u64 = unsigned long long;"
TABLE_TEMPLATE = """\
template <u64 Seed, int N>
struct Table {
  u64 v[N]{};
  constexpr Table() {
    u64 s = Seed;
    for (int i = 0; i < N; ++i) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      v[i] = s ^ (s >> 29);
    }
  }
  constexpr u64 fold() const {
    u64 acc = 0;
    for (int i = 0; i < N; ++i) acc = ((acc << 5) | (acc >> 59)) ^ v[i];
    return acc;
  }
};

template <int K>
u64 chain(u64 x) {
  if constexpr (K == 0) {
    return x;
  } else {
    return chain<K - 1>(x * (2 * K + 1) + (x >> (K % 13 + 1)) + u64(K));
  }
}
"""


class Params:
    """The shape of the generated project, with sizes derived from `work`."""

    def __init__(self, modules, partitions, fan_in, impls, plain, seed, work, chain=False):
        if min(modules, partitions, impls, work) < 1 or min(fan_in, plain) < 0:
            raise ValueError("need modules, partitions, impls, work >= 1 and fan-in, plain >= 0")
        self.modules = modules
        self.partitions = partitions
        self.fan_in = fan_in
        self.impls = impls
        self.plain = plain
        self.seed = seed
        self.work = work
        self.chain = chain
        self.table_size = 1024 * work
        self.chain_depth = 4 * work

    def tu_count(self):
        """Translation units in the project, main.cpp included."""
        return self.modules * (self.partitions + 2 + self.impls) + self.plain + 1


def module_name(index, params):
    """The name (and namespace) of module number `index`, zero-padded."""
    width = len(str(params.modules - 1))
    return f"m{index:0{width}d}"


def choose_dependencies(params, rng):
    """For every module, the sorted indices of the earlier modules it imports: `fan_in`
    drawn at random, or with `chain` its `fan_in` direct predecessors (so the transitive
    closure of module i is every earlier module: the deepest graph for its size)."""
    if params.chain:
        return [list(range(max(0, i - params.fan_in), i)) for i in range(params.modules)]
    return [sorted(rng.sample(range(i), min(params.fan_in, i))) for i in range(params.modules)]


def top_modules(deps):
    """Indices of modules that no other module imports, in order."""
    imported = {d for ds in deps for d in ds}
    return [i for i in range(len(deps)) if i not in imported]


def detail_partition(name, params, rng):
    """Source of the internal partition `name:detail`."""
    return f"""\
module {name}:detail;

namespace {name}::detail {{
{U64}

{TABLE_TEMPLATE}
inline constexpr u64 salt = Table<{rng.getrandbits(63)}ULL, {params.table_size}>{{}}.fold();

u64 scramble(u64 x) {{ return chain<{params.chain_depth}>(x ^ salt); }}
}}  // namespace {name}::detail
"""


def exported_partition(name, part, dep_names, params, rng):
    """Source of exported partition `name:p<part>`; p0 imports `dep_names`."""
    imports = "".join(f"import {d};\n" for d in dep_names)
    dep_salt = "".join(f" ^ {d}::p0_salt" for d in dep_names) if part == 0 else ""
    return f"""\
export module {name}:p{part};
import :detail;
{imports}
export namespace {name} {{
{U64}

inline constexpr u64 p{part}_salt =
    detail::Table<{rng.getrandbits(63)}ULL, {params.table_size}>{{}}.fold(){dep_salt};

template <int K>
u64 p{part}_mix(u64 x) {{
  return detail::chain<K>(x + p{part}_salt) ^ (x >> {part + 3});
}}

u64 p{part}_local(u64 x) {{ return p{part}_mix<{params.chain_depth}>(x) + detail::scramble(x); }}

u64 p{part}_value(u64 x);
}}  // namespace {name}
"""


def primary_interface(name, params):
    """Source of the primary interface `name`."""
    parts = "".join(f"export import :p{k};\n" for k in range(params.partitions))
    extras = "".join(f"u64 extra{k}(u64 x);\n" for k in range(1, params.impls))
    return f"""\
export module {name};
{parts}import :detail;

export namespace {name} {{
{U64}

u64 base(u64 x);
u64 combine(u64 x);
{extras}
u64 twist(u64 x) {{ return detail::scramble(x) ^ p0_salt; }}
}}  // namespace {name}
"""


def first_impl_unit(name, dep_names, params, rng, edited):
    """Source of `impl0.cpp`: defines base, combine and every pK_value."""
    imports = "".join(f"import {d};\n" for d in dep_names)
    edit = f"  x += 0ULL; {EDIT_MARKER}\n" if edited else ""
    values = "".join(
        f"u64 p{k}_value(u64 x) {{ return p{k}_local(x) ^ (base(x) >> {k + 1}); }}\n"
        for k in range(params.partitions)
    )
    sums = " + ".join(f"p{k}_value(x)" for k in range(params.partitions))
    extras = "".join(f"  acc ^= extra{k}(acc);\n" for k in range(1, params.impls))
    calls = "".join(f"  acc += {d}::base(acc ^ p0_salt);\n" for d in dep_names)
    return f"""\
module {name};
import :detail;
{imports}
namespace {name} {{
namespace {{
constexpr u64 kTable = detail::Table<{rng.getrandbits(63)}ULL, {params.table_size}>{{}}.fold();
}}  // namespace

u64 base(u64 x) {{
{edit}  return detail::chain<{params.chain_depth}>(x) ^ kTable;
}}

{values}
u64 combine(u64 x) {{
  u64 acc = base(x) + {sums} + twist(x);
{extras}{calls}  return acc;
}}
}}  // namespace {name}
"""


def extra_impl_unit(name, k, params, rng):
    """Source of `impl<k>.cpp` (k >= 1): defines `extra<k>`."""
    return f"""\
module {name};
import :detail;

namespace {name} {{
namespace {{
constexpr u64 kTable = detail::Table<{rng.getrandbits(63)}ULL, {params.table_size}>{{}}.fold();
}}  // namespace

u64 extra{k}(u64 x) {{ return detail::chain<{params.chain_depth}>(x + {k}) ^ kTable; }}
}}  // namespace {name}
"""


def plain_unit(k, dep_name):
    """Source of the plain TU `plain<k>.cpp`, which imports `dep_name`."""
    return f"""\
import {dep_name};

unsigned long long plain{k}(unsigned long long x) {{ return {dep_name}::combine(x ^ {k}ULL); }}
"""


def main_unit(params, tops, plain_count):
    """Source of `main.cpp`: calls every top module and plain TU, prints a checksum."""
    names = [module_name(i, params) for i in tops]
    imports = "".join(f"import {n};\n" for n in names)
    decls = "".join(f"unsigned long long plain{k}(unsigned long long);\n" for k in range(plain_count))
    calls = "".join(f"  acc = {n}::combine(acc) ^ (acc >> 7);\n" for n in names)
    calls += "".join(f"  acc = plain{k}(acc) + (acc << 3);\n" for k in range(plain_count))
    return f"""\
#include <cstdio>
{imports}
{decls}
int main() {{
  unsigned long long acc = 1469598103934665603ULL;
{calls}  std::printf("synth: {params.modules} modules, checksum %llu\\n", acc);
  return 0;
}}
"""


def cmod_manifest():
    """The `cmod.toml` (manifest v1) for the generated project."""
    return """\
[package]
name = "synth"
version = "0.1.0"

[toolchain]
compiler = "clang++-19"
cxx-standard = "20"
stdlib = "libstdc++"

[lib]
sources = ["src/**/*.cppm", "src/**/*.cpp"]
kind = "static"

[[bin]]
name = "synth"
main = "main.cpp"

[build]
cxxflags = []
defines = []
include-dirs = []

[profile.dev]
opt-level = 1
debug = false
"""


def cmake_lists(interfaces, sources):
    """The `CMakeLists.txt` listing module interfaces and plain/impl sources."""
    def listing(paths):
        return "".join(f"    {p}\n" for p in paths)

    return f"""\
cmake_minimum_required(VERSION 3.28)
project(synth LANGUAGES CXX)

set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_CXX_SCAN_FOR_MODULES ON)

add_library(synthlib STATIC)
target_sources(synthlib
  PUBLIC FILE_SET CXX_MODULES FILES
{listing(interfaces)}  PRIVATE
{listing(sources)})
target_compile_options(synthlib PRIVATE -O1)

add_executable(synth main.cpp)
target_compile_options(synth PRIVATE -O1)
target_link_libraries(synth PRIVATE synthlib)
"""


def project_files(params):
    """Map every relative path of the project to its text."""
    rng = random.Random(params.seed)
    deps = choose_dependencies(params, rng)
    files = {}
    for i in range(params.modules):
        name = module_name(i, params)
        dep_names = [module_name(d, params) for d in deps[i]]
        root = f"src/{name}"
        files[f"{root}/{name}.cppm"] = primary_interface(name, params)
        files[f"{root}/detail.cppm"] = detail_partition(name, params, rng)
        for k in range(params.partitions):
            part_deps = dep_names if k == 0 else []
            files[f"{root}/p{k}.cppm"] = exported_partition(name, k, part_deps, params, rng)
        edited = i == params.modules - 1
        files[f"{root}/impl0.cpp"] = first_impl_unit(name, dep_names, params, rng, edited)
        for k in range(1, params.impls):
            files[f"{root}/impl{k}.cpp"] = extra_impl_unit(name, k, params, rng)
    for k in range(params.plain):
        files[f"src/plain/plain{k}.cpp"] = plain_unit(k, module_name(rng.randrange(params.modules), params))
    files["main.cpp"] = main_unit(params, top_modules(deps), params.plain)
    interfaces = sorted(p for p in files if p.endswith(".cppm"))
    sources = sorted(p for p in files if p.startswith("src/") and p.endswith(".cpp"))
    files["CMakeLists.txt"] = cmake_lists(interfaces, sources)
    files["cmod.toml"] = cmod_manifest()
    return files


def generate(out, params, force=False):
    """Write the project into directory `out`; `force` replaces an existing one."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"{out} is not empty (use --force to replace it)")
        shutil.rmtree(out)
    for rel, text in project_files(params).items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def edit_impl(project, value):
    """Set the marked statement in the edited implementation unit to `x += value`.

    Returns the path of the edited file. Each distinct `value` gives distinct
    source bytes, so repeated edits with increasing values always rebuild.
    """
    for path in sorted(Path(project, "src").rglob("impl*.cpp")):
        text = path.read_text()
        if EDIT_MARKER in text:
            path.write_text(EDIT_LINE.sub(f"x += {value}ULL; {EDIT_MARKER}", text, count=1))
            return path
    raise FileNotFoundError(f"no implementation unit with {EDIT_MARKER!r} under {project}/src")


INTERFACE_EDIT = "// bench:interface-edit"


def edit_interface(project, index, value):
    """Set a trailing comment of module number `index`'s primary interface to one made
    of `value` (the BMI embeds its source and records its size, so it changes, and so
    does every importer's downstream: all are rebuilt). `value` None removes it. Returns
    the path of the edited file."""
    dirs = sorted(p for p in Path(project, "src").iterdir() if p.is_dir())
    width = len(dirs[0].name) - 1
    path = Path(project, "src", f"m{index:0{width}d}", f"m{index:0{width}d}.cppm")
    text = path.read_text().split(INTERFACE_EDIT)[0]
    if value is not None:
        text += f"{INTERFACE_EDIT} {'x' * (value % 50)} {value}\n"
    path.write_text(text)
    return path


def add_shape_args(ap):
    """Add the project-shape options (shared with run.py) to parser `ap`."""
    ap.add_argument("--modules", type=int, default=40)
    ap.add_argument("--partitions", type=int, default=2, help="exported partitions per module")
    ap.add_argument("--fan-in", type=int, default=3, help="earlier modules each module imports")
    ap.add_argument("--impls", type=int, default=1, help="implementation units per module")
    ap.add_argument("--plain", type=int, default=0, help="plain .cpp files")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=int, default=10,
                    help="compile-time work per unit: constexpr table of 1024*work, template chain of 4*work")
    ap.add_argument("--chain", action="store_true",
                    help="each module imports its fan-in direct predecessors (deepest closures)")


def params_from(args):
    """Params from parsed add_shape_args options."""
    return Params(args.modules, args.partitions, args.fan_in, args.impls, args.plain, args.seed, args.work,
                  getattr(args, "chain", False))


def shape_flags(params):
    """The gen.py options that reproduce `params`."""
    return (f"--modules {params.modules} --partitions {params.partitions} --fan-in {params.fan_in} "
            f"--impls {params.impls} --plain {params.plain} --seed {params.seed} --work {params.work}"
            + (" --chain" if params.chain else ""))


def parse_args(argv):
    """Command-line interface; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="project directory to write (or to edit, with --edit-impl)")
    add_shape_args(ap)
    ap.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    ap.add_argument("--edit-impl", action="store_true", help="edit the marked implementation unit")
    ap.add_argument("--edit-value", type=int, default=1, help="value written by --edit-impl")
    return ap.parse_args(argv)


def main(argv=None):
    """Generate a project, or edit one with --edit-impl."""
    args = parse_args(argv)
    if args.edit_impl:
        print(edit_impl(args.out, args.edit_value))
        return 0
    params = params_from(args)
    generate(args.out, params, args.force)
    print(f"{args.out}: {params.tu_count()} translation units")
    return 0


if __name__ == "__main__":
    sys.exit(main())
