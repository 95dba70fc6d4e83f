"""Stand-in fills for scale.py sizes too large to build for real (`--stand-in-above`).

A real cold build of the 10,001-unit chain takes hours on each side (every compile reads
thousands of BMIs), too long to repeat for a no-op measurement. Such a size is filled
instead by a stand-in compiler (stand_in.c) on both sides: the same steps run (ninja's
scans and collations, cmod's scans, archives, every build step in its sandbox), but each
compile and link writes placeholder outputs. What a no-op, `cmod eval` and a dry-run
read is then what a real build leaves (the build graph, ninja's log and deps, cmod's
store paths, journal and caches); the outputs' contents, which they never read, are not.
Edits are not measured at such a size: a real compile needs real BMIs.

The stand-in is installed beside the real driver (`/usr/lib/llvm-19/bin`), so that
clang-scan-deps finds the resource directory relative to it, and is named as a clang++
driver. Both sides name it as their compiler: CMake's configure and cmod's toolchain
probes run the real driver through it, and the toolchain identity covers it.
"""

import functools
import os
import subprocess
import tempfile
from pathlib import Path

import run as harness

HERE = Path(__file__).resolve().parent
REAL_CXX = Path("/usr/lib/llvm-19/bin/clang++")
STAND_IN = REAL_CXX.with_name("standin-clang++")
TEMPLATE_SOURCE = "__attribute__((weak)) int main(void) { return 0; }\n"


@functools.cache
def install():
    """Build stand_in.c into STAND_IN (static: a cmod sandbox shows it no libraries),
    once per run, whatever the number of stand-in sizes."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "template.c").write_text(TEMPLATE_SOURCE)
        subprocess.run(["clang-19", "-c", "-O1", "template.c", "-o", "template.o"], cwd=tmp, check=True)
        data = (tmp / "template.o").read_bytes()
        rows = ",\n".join(", ".join(str(b) for b in data[i:i + 24]) for i in range(0, len(data), 24))
        (tmp / "stand_in_template.h").write_text(
            f"static const unsigned char TEMPLATE[] = {{\n{rows}\n}};\n"
            f"static const unsigned long TEMPLATE_LEN = {len(data)};\n")
        built = tmp / "standin-clang++"
        subprocess.run(["clang-19", "-static", "-O2", f'-DREAL_CXX="{REAL_CXX}"', f"-I{tmp}",
                        str(HERE / "stand_in.c"), "-o", str(built)], check=True)
        staged = STAND_IN.with_name(STAND_IN.name + ".new")
        staged.write_bytes(built.read_bytes())
        staged.chmod(0o755)
        staged.replace(STAND_IN)
    harness.log(f"stand-in compiler installed at {STAND_IN}")
    return STAND_IN


def use_in_manifest(project):
    """Point the cmod project's `[toolchain] compiler` at the stand-in."""
    manifest = Path(project, "cmod.toml")
    text = manifest.read_text()
    replaced = text.replace('compiler = "clang++-19"', f'compiler = "{STAND_IN}"', 1)
    if replaced == text:
        raise RuntimeError(f"{manifest}: no `compiler = \"clang++-19\"` to replace")
    manifest.write_text(replaced)


def fill(ctx, size, measure, messages):
    """Fill ninja's build dir and cmod's store of `size` through the stand-in, untimed
    for the table (their wall times go to the notes), and check that neither has work
    left. `measure` and `messages` are scale.py's (its runner and cmod's JSON lines)."""
    took = []
    if ctx.cmake:
        harness.configure(ctx.tools, size.proj_cmake, size.build, compiler=str(STAND_IN))
        env = dict(os.environ, CMOD_STAND_IN="1")
        out = measure(ctx.ninja(size), harness.WORK, env)
        took.append(f"ninja {harness.fmt_time(out.seconds)}")
        dry = harness.run([*ctx.ninja(size), "-n"], harness.WORK)[1]
        if "no work to do" not in dry:
            raise RuntimeError(f"ninja's stand-in fill left work to do:\n{dry[-2000:]}")
    size.fresh_store("fill")
    out = measure(ctx.realise(size), size.proj_cmod, size.env)
    took.append(f"cmod {harness.fmt_time(out.seconds)}")
    dry = measure(ctx.realise(size, "--dry-run"), size.proj_cmod, size.env)
    would_build = messages(dry)[-1][1]["would_build"]
    if would_build:
        raise RuntimeError(f"cmod's stand-in fill left {would_build} steps to build")
    size.notes.append(
        f"{size.tus:,} TUs: filled through a stand-in compiler (above --stand-in-above "
        f"{ctx.args.stand_in_above}; bench/stand_in.py: every compile and link writes "
        f"placeholder outputs, everything else runs; {', '.join(took)}); measured: no-op, "
        "eval and dry-run, which never read outputs; no edit (a real compile needs real BMIs)")
    harness.log(f"{size.tus} TUs: filled through the stand-in ({', '.join(took)})")
