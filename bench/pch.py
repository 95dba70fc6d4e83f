#!/usr/bin/env python3
"""Benchmark precompiled headers: the cold build of examples/pch with and without its
`pch` (without: the same header force-included into every unit, `-include src/pch.h`),
with cmod and, side by side in the same run, with CMake 4 + Ninja
(`target_precompile_headers`), at two sizes.

The example's library (6 units) and binary (1 unit) include one header of 18 standard
headers. Size `xN` adds N-1 renamed copies of the library's units, so cost can be
compared as the number of units using the header grows. Every variant's binary must print
the same text. Medians of `--runs` cold builds (`-j2`; cmod with an empty store and
caches, so its toolchain identification is included; CMake configured beforehand, its
configure not included) are written into bench/RESULTS.md under "Precompiled headers
(issue 10)".
"""

import argparse
import datetime
import platform
import re
import shutil
import subprocess
import sys

import run as bench

REPO = bench.REPO
WORK = bench.WORK / "pch"
SECTION = "## Precompiled headers (issue 10)"
EXAMPLE = REPO / "examples" / "pch"
UNITS = ["words", "frequencies", "top", "lengths", "sentences", "format"]


def make_project(dest, copies, with_pch):
    """examples/pch at `dest` with `copies` copies of the library's units, with or without `pch`."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("result*", "cmod.lock", "compile_commands.json"))
    for i in range(1, copies):
        for unit in UNITS:
            text = (EXAMPLE / "src" / f"{unit}.cpp").read_text()
            text = text.replace('#include "stats.h"', '#include "../stats.h"')
            text = text.replace("namespace stats {", f"namespace stats_copy{i} {{")
            text = text.replace("std::vector<std::string> words(", "std::vector<std::string> words_unused(")
            out = dest / "src" / f"copy{i}" / f"{unit}.cpp"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(declarations(i) + text)
    manifest = (dest / "cmod.toml").read_text()
    manifest = manifest.replace("[lib]\n", "[lib]\nsources = [\"src/**/*.cpp\"]\n")
    if not with_pch:
        # The units rely on the header as PCH users do; without the PCH it is force-included.
        manifest = re.sub(r'^pch = .*\n', 'cxxflags = ["-include", "src/pch.h"]\n', manifest, flags=re.M)
    (dest / "cmod.toml").write_text(manifest)
    write_cmake(dest, with_pch)


def declarations(i):
    """The copies' own declarations (their functions live in namespace stats_copy<i>)."""
    header = (EXAMPLE / "src" / "stats.h").read_text()
    body = header.split("namespace stats {", 1)[1].split("}  // namespace stats", 1)[0]
    body = body.replace("std::vector<std::string> words(", "std::vector<std::string> words_unused(")
    return f"#include <cstddef>\n#include <map>\n#include <set>\n#include <string>\n#include <vector>\nnamespace stats_copy{i} {{{body}}}\n"


def write_cmake(dest, with_pch):
    """A CMakeLists.txt building the same library and binary."""
    if with_pch:
        pch = ("target_precompile_headers(stats PRIVATE src/pch.h)\n"
               "target_precompile_headers(wordstats REUSE_FROM stats)\n")
    else:
        pch = ("target_compile_options(stats PRIVATE -include ${CMAKE_SOURCE_DIR}/src/pch.h)\n"
               "target_compile_options(wordstats PRIVATE -include ${CMAKE_SOURCE_DIR}/src/pch.h)\n")
    (dest / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.28)\n"
        "project(wordstats CXX)\n"
        "set(CMAKE_CXX_STANDARD 20)\nset(CMAKE_CXX_STANDARD_REQUIRED ON)\nset(CMAKE_CXX_EXTENSIONS OFF)\n"
        "file(GLOB_RECURSE LIB_SOURCES CONFIGURE_DEPENDS src/*.cpp)\n"
        "add_library(stats STATIC ${LIB_SOURCES})\n"
        "add_executable(wordstats app/main.cpp)\n"
        "target_link_libraries(wordstats PRIVATE stats)\n" + pch
    )


QUIET = None


def timed(fn):
    """Time `fn` after the machine is idle; ((seconds, stdout), CPU seconds of our tree)."""
    return QUIET.timed(fn)


def cmod_cold(cmod, project, store, jobs):
    """One cold `cmod realise` in an empty store; returns (seconds, cpu, built, output)."""
    if store.exists():
        shutil.rmtree(store)
    for link in project.glob("result*"):
        link.unlink()
    (secs, out), cpu = timed(
        lambda: bench.run([cmod, "--store", store, "realise", "-j", str(jobs), "--message-format", "json"], project))
    built = sum(1 for line in out.splitlines() if '"reason":"built"' in line)
    output = subprocess.run([project / "result"], stdout=subprocess.PIPE, text=True, check=True).stdout
    return secs, cpu, built, output


def cmake_cold(tools, project, build, jobs):
    """Configure (untimed), then one cold Ninja build; returns (seconds, cpu, edges, output)."""
    cmake, ninja = tools
    if build.exists():
        shutil.rmtree(build)
    bench.run([cmake, "-S", project, "-B", build, "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}",
               "-DCMAKE_CXX_COMPILER=clang++-19", "-DCMAKE_BUILD_TYPE=Debug"], project)
    (secs, out), cpu = timed(lambda: bench.run([ninja, "-C", build, "-j", str(jobs)], project))
    edges = len(re.findall(r"^\[\d+/\d+\]", out, flags=re.M))
    output = subprocess.run([build / "wordstats"], stdout=subprocess.PIPE, text=True, check=True).stdout
    return secs, cpu, edges, output


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--sizes", default="1,4", help="comma-separated copy counts (1 = the example)")
    ap.add_argument("--cmod", default=str(REPO / "target" / "release" / "cmod"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    global QUIET
    QUIET = bench.Quiet(120)
    tools = bench.ensure_venv()
    rows, outputs = [], set()
    for size in [int(s) for s in args.sizes.split(",")]:
        for with_pch in (True, False):
            label = f"x{size} {'with' if with_pch else 'without'} pch"
            project = WORK / f"x{size}-{'pch' if with_pch else 'nopch'}"
            make_project(project, size, with_pch)
            units = sum(1 for _ in (project / "src").rglob("*.cpp")) + 1
            samples = {"cmod": [], "ninja": []}
            for i in range(args.runs):
                secs, cpu, built, out = cmod_cold(args.cmod, project, WORK / "store", args.jobs)
                samples["cmod"].append((secs, cpu, built))
                outputs.add(out)
                secs, cpu, edges, out = cmake_cold(tools, project, WORK / "build", args.jobs)
                samples["ninja"].append((secs, cpu, edges))
                outputs.add(out)
                bench.log(f"{label} run {i + 1}: cmod {samples['cmod'][-1][0]:.2f} s, ninja {samples['ninja'][-1][0]:.2f} s")
            rows.append((size, with_pch, units, samples))
    if len(outputs) != 1:
        bench.log(f"outputs differ: {outputs}")
        return 1
    section = render(rows, args, tools)
    print(section)
    if not args.no_write:
        bench.write_section(bench.RESULTS, section, SECTION)
    return 0


def render(rows, args, tools):
    """The RESULTS.md section."""
    med = lambda xs: bench.median(xs)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            stdout=subprocess.PIPE, text=True).stdout.strip() or "?"
    lines = [SECTION, "", f"Measured {datetime.date.today()} at commit {commit} with:", "",
             f"    python3 bench/pch.py --runs {args.runs} --sizes {args.sizes}", "",
             f"- Machine: {platform.platform()}; {bench.first_line(['clang++-19', '--version'])}; "
             f"{bench.first_line([str(tools[0]), '--version'])}, ninja {bench.first_line([str(tools[1]), '--version'])}.",
             "- Project: examples/pch (`xN`: N copies of the library's 6 units, each including the same "
             "18-header `src/pch.h`), dev profile (`-O0 -g`), libstdc++, `-j" f"{args.jobs}`.",
             f"- Cold builds, {args.runs}× each, medians (samples in parentheses): cmod with an empty store "
             "and caches (toolchain identification included); Ninja on a freshly configured tree "
             "(CMake's `target_precompile_headers`, configure not included). All binaries print the same text.",
             f"- Shared machine: {QUIET.summary()}.",
             "", "| project | units | cmod | ninja | cmod / ninja |", "| --- | --- | --- | --- | --- |"]
    by = {}
    for size, with_pch, units, s in rows:
        c, n = s["cmod"], s["ninja"]
        cm, nm = med([x[0] for x in c]), med([x[0] for x in n])
        by[(size, with_pch)] = (cm, nm)
        fmt = lambda xs: ", ".join(f"{x[0]:.2f}" for x in xs)
        lines.append(
            f"| x{size} {'with' if with_pch else 'without'} pch | {units} | {cm:.2f} s ({fmt(c)}); CPU {med([x[1] for x in c]):.2f} s; {c[0][2]} built "
            f"| {nm:.2f} s ({fmt(n)}); CPU {med([x[1] for x in n]):.2f} s; {n[0][2]} ran | {cm / nm:.2f}× |")
    lines.append("")
    for size in sorted({r[0] for r in rows}):
        (cw, nw), (co, no) = by[(size, True)], by[(size, False)]
        lines.append(f"- x{size}: the PCH takes cmod's cold build from {co:.2f} s to {cw:.2f} s ({cw / co:.2f}×), "
                     f"Ninja's from {no:.2f} s to {nw:.2f} s ({nw / no:.2f}×).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
