#!/usr/bin/env python3
"""Benchmark header units: a module project whose units each use four standard headers
(`<vector>`, `<string>`, `<map>`, `<algorithm>`), built with the headers `#include`d in
each unit's global module fragment versus imported as header units (`import <vector>;`),
cold and after a one-line edit, with cmod and, side by side in the same run, the
`#include` variant with CMake 4 + Ninja (CMake has no header units).

Sizes are unit counts: N-1 module interfaces `mK` (each exporting a function that uses
all four headers; every fifth one also imports the previous module), and `main.cpp`,
which imports them all. The edit changes one statement in the middle module's function.
Every variant's binary must print the same text. Medians of `--runs` runs (`-j2`; cold:
cmod with an empty store and caches, so its toolchain identification is included; Ninja
on a freshly configured tree, configure not included) go into bench/RESULTS.md under
"Header units (issue 14)".
"""

import argparse
import datetime
import platform
import shutil
import subprocess
import sys

import run as bench

REPO = bench.REPO
WORK = bench.WORK / "header-units"
SECTION = "## Header units (issue 14)"
HEADERS = ["vector", "string", "map", "algorithm"]


def module_text(k, header_units, value):
    """Module `m<k>`: the four headers, one function using them all."""
    gmf = "" if header_units else "module;\n" + "".join(f"#include <{h}>\n" for h in HEADERS)
    imports = "".join(f"import <{h}>;\n" for h in HEADERS) if header_units else ""
    prev = f"import m{k - 1};\n" if k % 5 == 4 else ""
    uses_prev = f" + f{k - 1}()" if prev else ""
    return (f"{gmf}export module m{k};\n{imports}{prev}"
            f"export int f{k}() {{\n"
            f"  std::map<std::string, std::vector<int>> m;\n"
            f"  m[\"k{k}\"] = {{3, 1, {value}}};\n"
            f"  std::sort(m[\"k{k}\"].begin(), m[\"k{k}\"].end());\n"
            f"  return m[\"k{k}\"].front() + static_cast<int>(m.size()){uses_prev};\n"
            f"}}\n")


def make_project(dest, units, header_units):
    """The project at `dest`: `units - 1` modules and main.cpp, for cmod and for CMake."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "src").mkdir(parents=True)
    n = units - 1
    for k in range(n):
        (dest / "src" / f"m{k}.cppm").write_text(module_text(k, header_units, 2))
    main = "".join(f"import m{k};\n" for k in range(n))
    main += "#include <cstdio>\n" if not header_units else "import <cstdio>;\n"
    main += "int main() {\n  int total = 0;\n" + "".join(f"  total += f{k}();\n" for k in range(n))
    main += "  std::printf(\"%d\\n\", total);\n}\n"
    (dest / "main.cpp").write_text(main)
    (dest / "cmod.toml").write_text(
        "[package]\nname = \"hubench\"\nversion = \"0.1.0\"\n\n"
        "[toolchain]\ncompiler = \"clang++-19\"\ncxx-standard = 20\nstdlib = \"libstdc++\"\n\n"
        "[lib]\nname = \"mods\"\nsources = [\"src/*.cppm\"]\n\n"
        "[[bin]]\nname = \"hubench\"\nmain = \"main.cpp\"\n\n"
        "[profile.dev]\nopt-level = 0\ndebug = false\n")
    (dest / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.28)\nproject(hubench CXX)\n"
        "set(CMAKE_CXX_STANDARD 20)\nset(CMAKE_CXX_STANDARD_REQUIRED ON)\nset(CMAKE_CXX_EXTENSIONS OFF)\n"
        "add_library(mods STATIC)\n"
        "file(GLOB MODS CONFIGURE_DEPENDS src/*.cppm)\n"
        "target_sources(mods PUBLIC FILE_SET CXX_MODULES FILES ${MODS})\n"
        "add_executable(hubench main.cpp)\ntarget_link_libraries(hubench PRIVATE mods)\n")


def edit(project, header_units, units, value):
    """Change one statement of the middle module."""
    k = (units - 1) // 2
    (project / "src" / f"m{k}.cppm").write_text(module_text(k, header_units, value))


QUIET = None


def cmod_build(cmod, project, store, jobs, fresh):
    """One `cmod realise` (in an empty store if `fresh`); returns (seconds, cpu, built, output)."""
    if fresh:
        if store.exists():
            shutil.rmtree(store)
        for link in project.glob("result*"):
            link.unlink()
    cmd = [cmod, "--store", store, "realise", "-j", str(jobs), "--message-format", "json"]
    (secs, out), cpu = QUIET.timed(lambda: bench.run(cmd, project))
    built = sum(1 for line in out.splitlines() if '"reason":"built"' in line)
    output = subprocess.run([project / "result"], stdout=subprocess.PIPE, text=True, check=True).stdout
    return secs, cpu, built, output


def ninja_build(tools, project, build, jobs, fresh):
    """Configure (untimed) if `fresh`, then one Ninja build; returns (seconds, cpu, edges, output)."""
    cmake, ninja = tools
    if fresh:
        if build.exists():
            shutil.rmtree(build)
        bench.configure(tools, project, build)
    (secs, out), cpu = QUIET.timed(lambda: bench.run([ninja, "-C", build, "-j", str(jobs)], project))
    edges = bench.ninja_edges(out)
    output = subprocess.run([build / "hubench"], stdout=subprocess.PIPE, text=True, check=True).stdout
    return secs, cpu, edges, output


def measure(args, tools, units):
    """Cold and edit samples of the three variants at one size."""
    samples = {}
    outputs = set()
    for run in range(args.runs):
        for variant in ("cmod includes", "cmod header units", "ninja includes"):
            hu = variant == "cmod header units"
            project = WORK / f"n{units}-{'hu' if hu else 'inc'}-{variant.split()[0]}"
            make_project(project, units, hu)
            store, build = WORK / "store", WORK / "build"
            step = ((lambda fresh: cmod_build(args.cmod, project, store, args.jobs, fresh))
                    if variant.startswith("cmod") else
                    (lambda fresh: ninja_build(tools, project, build, args.jobs, fresh)))
            cold = step(True)
            outputs.add(cold[3])
            edit(project, hu, units, 10 + run)
            edited = step(False)
            outputs.add(("edit", edited[3]))
            samples.setdefault((variant, "cold"), []).append(cold[:3])
            samples.setdefault((variant, "edit"), []).append(edited[:3])
            bench.log(f"{units} units, {variant}, run {run + 1}: cold {cold[0]:.2f} s, edit {edited[0]:.2f} s")
    if len({o for o in outputs if not isinstance(o, tuple)}) != 1 or len({o for o in outputs if isinstance(o, tuple)}) != 1:
        raise SystemExit(f"outputs differ at {units} units: {outputs}")
    return samples


def render(args, tools, results):
    """The RESULTS.md section."""
    med = bench.median
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            stdout=subprocess.PIPE, text=True).stdout.strip() or "?"
    lines = [SECTION, "", f"Measured {datetime.date.today()} at commit {commit} with:", "",
             f"    cargo build --release && python3 bench/header_units.py --runs {args.runs} --sizes {args.sizes}", "",
             f"- Machine: {platform.platform()}; {bench.first_line(['clang++-19', '--version'])}; "
             f"{bench.first_line([str(tools[0]), '--version'])}, ninja {bench.first_line([str(tools[1]), '--version'])}.",
             "- Project (bench/header_units.py): N-1 module interfaces, each using `<vector>`, `<string>`, `<map>` and "
             "`<algorithm>` (every fifth also imports the previous module), and `main.cpp` importing them all; "
             "`-std=c++20 -O0`, no `-g`, libstdc++, `-j" f"{args.jobs}`. *includes*: the four headers `#include`d "
             "in each unit's global module fragment; *header units*: `import <vector>;` ... (CMake 4 has no header units, "
             "so Ninja builds the includes variant).",
             "- *cold*: cmod with an empty store and caches (toolchain identification included), Ninja on a freshly "
             "configured tree (configure not included); *edit*: one statement of the middle module changed, then the "
             f"same command. {args.runs}× each, medians (samples in parentheses). All binaries print the same text.",
             f"- Shared machine: {QUIET.summary()}.",
             "", "| units | variant | cold | edit | cold CPU | steps (cold / edit) |", "| --- | --- | --- | --- | --- | --- |"]
    for units, samples in results:
        for variant in ("cmod includes", "cmod header units", "ninja includes"):
            c, e = samples[(variant, "cold")], samples[(variant, "edit")]
            fmt = lambda xs: ", ".join(f"{x[0]:.2f}" for x in xs)
            lines.append(f"| {units} | {variant} | {med([x[0] for x in c]):.2f} s ({fmt(c)}) | "
                         f"{med([x[0] for x in e]):.2f} s ({fmt(e)}) | {med([x[1] for x in c]):.2f} s | "
                         f"{c[0][2]} / {e[0][2]} |")
    lines.append("")
    for units, samples in results:
        m = lambda v, k: med([x[0] for x in samples[(v, k)]])
        lines.append(
            f"- {units} units: header units take cmod's cold build from {m('cmod includes', 'cold'):.2f} s to "
            f"{m('cmod header units', 'cold'):.2f} s ({m('cmod header units', 'cold') / m('cmod includes', 'cold'):.2f}×) "
            f"and its edit from {m('cmod includes', 'edit'):.2f} s to {m('cmod header units', 'edit'):.2f} s "
            f"({m('cmod header units', 'edit') / m('cmod includes', 'edit'):.2f}×); against Ninja's includes build, "
            f"cmod with header units is {m('cmod header units', 'cold') / m('ninja includes', 'cold'):.2f}× cold and "
            f"{m('cmod header units', 'edit') / m('ninja includes', 'edit'):.2f}× on the edit.")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--sizes", default="21,41", help="comma-separated unit counts (modules + main.cpp)")
    ap.add_argument("--cmod", default=str(REPO / "target" / "release" / "cmod"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    global QUIET
    QUIET = bench.Quiet(60)
    tools = bench.ensure_venv()
    results = [(units, measure(args, tools, units)) for units in (int(s) for s in args.sizes.split(","))]
    section = render(args, tools, results)
    print(section)
    if not args.no_write:
        bench.write_section(bench.RESULTS, section, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
