#!/usr/bin/env python3
"""Scale benchmark (issue 12): cmod against CMake 4 + Ninja on deep module graphs of growing size.

For each size, a module count M, generates the project twice (one copy per build system):

    gen.py DIR --modules M --partitions 2 --fan-in 2 --impls 1 --plain 0 --work 1 --chain

that is 5M+1 translation units, every module importing its two direct predecessors. Then
measures, with clang-19 and -j<jobs> on both sides and cmod and ninja runs interleaved:

* cold build: wall and CPU time (user+sys of the process tree); cmod with an empty store
  and caches, ninja on a freshly configured build dir (the configure timed separately);
* no-op rebuild: wall time;
* one implementation-unit edit: wall time of the whole rebuild, and the time from the
  command's start to the exec of its first compile (from the kernel's process events,
  beside what `.ninja_log` and cmod's `built` events say);
* `cmod eval`, and `cmod realise --dry-run` after an edit: wall time and peak RSS;
* the peak RSS of `cmod realise` itself (not its build steps) in the cold build and the edit.

Sizes above `--no-cold-above` TUs skip the timed cold builds; their store and build dir are
filled by one cold build each outside the measurements. Sizes above `--stand-in-above` TUs
are filled through a stand-in compiler instead (stand_in.py: placeholder outputs, in
minutes), and only the no-op, eval and dry-run are measured on them. Prints a table, writes every
sample to bench/work/scale-results.json and replaces the section "Scale benchmark
(issue 12)" of bench/RESULTS.md. Helpers (CMake venv, quiet-machine waits, cmod's
environment, output checks) come from run.py, the runner from measure.py. See
bench/README.md.
"""

import argparse
import dataclasses
import datetime
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import types
from collections import defaultdict

import gen
import run as harness
import stand_in
from measure import ExecWatcher, measure

SCALE = harness.WORK / "scale"
RESULTS_JSON = harness.WORK / "scale-results.json"
SECTION = "## Scale benchmark (issue 12)"
SHAPE = {"partitions": 2, "fan_in": 2, "impls": 1, "plain": 0, "seed": 1, "work": 1, "chain": True}
COMPILE_OUTPUTS = (".o", ".pcm")  # object files and BMIs: what a compile step produces


# ---------------------------------------------------------------- event streams


def cmod_messages(outcome):
    """(arrival seconds, message) per JSON line of cmod; raises unless it finished successfully."""
    messages = [(t, json.loads(text)) for t, text in outcome.lines if text.startswith("{")]
    last = messages[-1][1] if messages else {}
    if last.get("reason") != "finished" or not last.get("success"):
        tail = "\n".join(text for _, text in outcome.lines[-20:])
        raise RuntimeError(f"cmod did not finish successfully:\n{tail}")
    return messages


def clock_offset(messages):
    """Seconds from the command's start to the start of cmod's progress clock.

    `started_secs` and `elapsed_secs` count from that clock (started once the store is
    open, before evaluation). Each `built` line is written as soon as its `elapsed_secs` is
    taken, as is `finished` with its total, so arrival - started_secs - elapsed_secs is the
    offset plus a delivery delay; the smallest value is the best estimate.
    """
    return min(t - m.get("started_secs", 0.0) - m["elapsed_secs"]
               for t, m in messages if m.get("reason") in ("built", "finished"))


def cmod_first_step(messages):
    """Seconds from the command's start to the start of the first compile step, or None.

    A step starts (`started_secs`) when a worker takes it, before its cache lookup, build
    directory and sandbox: earlier than the compiler's exec.
    """
    starts = [m["started_secs"] for _, m in messages
              if m.get("reason") == "built" and m["name"].endswith(COMPILE_OUTPUTS)]
    return clock_offset(messages) + min(starts) if starts else None


def cmod_built(messages):
    """Derivations the run built."""
    return sum(1 for _, m in messages if m.get("reason") == "built")


def ninja_starts(log_before, log_after):
    """(first edge, first compile) start, seconds after ninja's start, of the edges one build ran.

    The build's entries are those it appended to .ninja_log: `start end mtime output hash`,
    times in ms from the build's start. Scanning (`.ddi`) and collation (`CXX.dd`,
    `.modmap`, ...) edges are not compiles; an edge producing an object or BMI is.
    """
    if not log_after.startswith(log_before):
        raise RuntimeError("ninja rewrote .ninja_log during the build: its new entries are unknown")
    edges, compiles = [], []
    for line in log_after[len(log_before):].decode().splitlines():
        if line.startswith("#"):
            continue
        start_ms, _end, _mtime, output = line.split("\t")[:4]
        edges.append(int(start_ms) / 1e3)
        if output.endswith(COMPILE_OUTPUTS):
            compiles.append(int(start_ms) / 1e3)
    return min(edges, default=None), min(compiles, default=None)


# ---------------------------------------------------------------- one size


class Size:
    """One project size: its work dirs, the cmod store in use, and the samples measured."""

    def __init__(self, modules, args):
        self.params = gen.Params(modules, **SHAPE)
        self.tus = self.params.tu_count()
        self.dir = SCALE / f"m{modules}"
        self.proj_cmake, self.build = self.dir / "proj-cmake", self.dir / "build-cmake"
        self.proj_cmod = self.dir / "proj-cmod"
        self.cold = args.no_cold_above is None or self.tus <= args.no_cold_above
        self.built = args.no_build_above is None or self.tus <= args.no_build_above
        self.stand_in = args.stand_in_above is not None and self.tus > args.stand_in_above
        self.keep_fill = args.keep_fill
        self.store = self.env = None
        self.samples = defaultdict(list)
        self.notes = []
        self.outputs = harness.Outputs()

    def add(self, key, value):
        """Record one sample (None, for a measurement that did not apply, is dropped)."""
        if value is not None:
            self.samples[key].append(value)

    def kept_fill(self):
        """Whether this size keeps the fill a previous run left (see `--keep-fill`)."""
        return (self.keep_fill and not self.cold and not self.stand_in
                and self.proj_cmod.is_dir() and self.proj_cmake.is_dir())

    def use_store(self, tag):
        """Switch cmod to the store and caches `cmod-store-<tag>`, `cmod-home-<tag>` as they are."""
        self.store, home = self.dir / f"cmod-store-{tag}", self.dir / f"cmod-home-{tag}"
        self.env = harness.cmod_env(home)

    def fresh_store(self, tag):
        """Switch cmod to an empty store and caches `cmod-store-<tag>`, `cmod-home-<tag>`."""
        self.store, home = self.dir / f"cmod-store-{tag}", self.dir / f"cmod-home-{tag}"
        for path in (self.store, home, self.proj_cmod / ".cmod"):
            shutil.rmtree(path, ignore_errors=True)
        (self.proj_cmod / "result").unlink(missing_ok=True)
        self.env = harness.cmod_env(home)

    def to_json(self):
        """Plain-data form for scale-results.json."""
        return {"modules": self.params.modules, "tus": self.tus, "cold_measured": self.cold,
                "samples": dict(self.samples), "notes": self.notes,
                "outputs_agree": self.outputs.ok(), "mismatches": self.outputs.mismatches}


@dataclasses.dataclass
class Context:
    """What every phase needs: options, the quiet-machine timer, the CMake tools."""

    args: argparse.Namespace
    quiet: harness.Quiet
    tools: tuple
    # HEAD when the run started (the binary measured is built from it, normally): a run
    # takes long enough for commits to land meanwhile.
    commit: str = dataclasses.field(default_factory=lambda: harness.first_line(
        ["git", "-C", str(harness.REPO), "rev-parse", "--short", "HEAD"]))

    @property
    def cmake(self):
        """True when the CMake + Ninja side runs."""
        return not self.args.skip_cmake

    def ninja(self, size):
        """The ninja command for `size`'s build dir."""
        return harness.build_cmd(self.tools, "ninja", size.build, self.args.jobs)

    def realise(self, size, *extra):
        """The `cmod realise` command on `size`'s current store."""
        return [self.args.cmod, "realise", f"-j{self.args.jobs}", "--store", str(size.store),
                "--message-format", "json", *extra]

    def timed(self, cmd, cwd, env=None, rss=False, execs=False):
        """`measure` after waiting for a quiet machine (run.py's Quiet counts interference)."""
        return self.quiet.timed(measure, cmd, cwd, env, rss, execs)[0]

    def warm_timed(self, warm, cmd, cwd, env=None, rss=False, execs=False):
        """`timed`, with `warm()` run untimed after the quiet wait, just before the command.

        This VM evicts file data left idle for some seconds, and a quiet wait is that long:
        without a warm-up, each timed run would read the compiler, the sources and the
        tool's own state back from disk (both tools alike, but by chance, so ratios swing
        2-3x). The warm-up is the same kind of run, so what is timed is the developer's
        edit loop with warm caches."""
        return self.quiet.timed_after(warm, measure, cmd, cwd, env, rss, execs)[0]


WARM_EDIT = 1000  # edit values of the untimed warm-up edits: far from the timed ones


def quietly(cmd, cwd, env=None):
    """Run a warm-up command untimed; it must succeed."""
    subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def check_binary(size, who, edit, path):
    """Run a built `synth` and compare its checksum with the other side's at this edit."""
    size.outputs.check(who, edit, harness.binary_output(path))


def cold_ninja(ctx, size):
    """A fresh configure (timed by itself), then a timed cold ninja build."""
    size.add("configure", harness.configure(ctx.tools, size.proj_cmake, size.build))
    out = ctx.timed(ctx.ninja(size), harness.WORK, execs=True)
    size.add("cold/ninja/wall", out.seconds)
    size.add("cold/ninja/cpu", out.cpu)
    size.add("cold/ninja/first_compile", out.first_compile)
    check_binary(size, "cmake+ninja", 0, size.build / harness.BIN)
    harness.log(f"{size.tus} TUs: ninja cold {out.seconds:.2f} s")


def cold_cmod(ctx, size, run_index):
    """A timed `cmod realise` into an empty store and caches."""
    size.fresh_store(run_index)
    out = ctx.timed(ctx.realise(size), size.proj_cmod, size.env, rss=True, execs=True)
    messages = cmod_messages(out)
    size.add("cold/cmod/wall", out.seconds)
    size.add("cold/cmod/cpu", out.cpu)
    size.add("cold/cmod/rss_kib", out.rss_kib)
    size.add("cold/cmod/first_compile", out.first_compile)
    size.add("cold/cmod/first_step", cmod_first_step(messages))
    size.add("cold/cmod/built", cmod_built(messages))
    check_binary(size, "cmod", 0, harness.cmod_binary(size.proj_cmod))
    harness.log(f"{size.tus} TUs: cmod cold {out.seconds:.2f} s")


def fill(ctx, size):
    """One cold build per side outside the measurements (no quiet wait), for skipped cold sizes.

    With `--keep-fill`, what an earlier run (or an interrupted fill) left is completed
    instead: ninja continues in its configured build dir, cmod realises into the same
    store, and only what is missing is built."""
    kept = size.kept_fill()
    if ctx.cmake:
        if not (kept and (size.build / "build.ninja").exists()):
            harness.configure(ctx.tools, size.proj_cmake, size.build)
        size.add("fill/ninja/wall", measure(ctx.ninja(size), harness.WORK).seconds)
        check_binary(size, "cmake+ninja", 0, size.build / harness.BIN)
    if kept:
        size.use_store("fill")
    else:
        size.fresh_store("fill")
    size.add("fill/cmod/wall", measure(ctx.realise(size), size.proj_cmod, size.env).seconds)
    check_binary(size, "cmod", 0, harness.cmod_binary(size.proj_cmod))
    took = ", ".join(f"{side} {harness.fmt_time(size.samples[f'fill/{side}/wall'][0])}"
                     for side in ("cmod", "ninja") if f"fill/{side}/wall" in size.samples)
    how = ("completed from an earlier run's fill (--keep-fill; times are of the completion only)"
           if kept else "filled by one cold build each outside the measurements")
    size.notes.append(f"{size.tus:,} TUs: cold builds not measured (above --no-cold-above "
                      f"{ctx.args.no_cold_above}); cmod's store and ninja's build dir were {how}, "
                      f"without waiting for a quiet machine ({took})")
    harness.log(f"{size.tus} TUs: filled without timing")


def cold_phase(ctx, size):
    """Interleaved cold builds, or one untimed fill per side above --no-cold-above."""
    if not size.cold:
        fill(ctx, size)
        return
    for run_index in range(ctx.args.cold_runs):
        if ctx.cmake:
            cold_ninja(ctx, size)
        cold_cmod(ctx, size, run_index)


def noop_phase(ctx, size):
    """Interleaved no-op rebuilds; each must run nothing."""
    for _ in range(ctx.args.runs):
        if ctx.cmake:
            ninja = ctx.ninja(size)
            out = ctx.warm_timed(lambda: quietly(ninja, harness.WORK), ninja, harness.WORK)
            size.add("noop/ninja/wall", out.seconds)
            size.add("noop/ninja/edges", harness.ninja_edges("\n".join(t for _, t in out.lines)))
        realise = ctx.realise(size)
        out = ctx.warm_timed(lambda: quietly(realise, size.proj_cmod, size.env), realise, size.proj_cmod, size.env)
        size.add("noop/cmod/wall", out.seconds)
        size.add("noop/cmod/built", cmod_built(cmod_messages(out)))
    if any(size.samples.get("noop/cmod/built", [])) or any(size.samples.get("noop/ninja/edges", [])):
        size.notes.append(f"{size.tus:,} TUs: a no-op rebuild ran work (see scale-results.json)")


def edit_ninja(ctx, size, value):
    """Edit the CMake copy and rebuild; the first compile's exec, and the first starts in .ninja_log."""
    ninja = ctx.ninja(size)
    log = size.build / ".ninja_log"
    before = b""

    def warm():
        nonlocal before
        gen.edit_impl(size.proj_cmake, WARM_EDIT + value)
        quietly(ninja, harness.WORK)
        gen.edit_impl(size.proj_cmake, value)
        before = log.read_bytes()

    out = ctx.warm_timed(warm, ninja, harness.WORK, execs=True)
    first_edge, first_compile = ninja_starts(before, log.read_bytes())
    size.add("edit/ninja/wall", out.seconds)
    size.add("edit/ninja/first_compile", out.first_compile)
    size.add("edit/ninja/log_first_edge", first_edge)
    size.add("edit/ninja/log_first_compile", first_compile)
    size.add("edit/ninja/edges", harness.ninja_edges("\n".join(t for _, t in out.lines)))
    check_binary(size, "cmake+ninja", value, size.build / harness.BIN)


def edit_cmod(ctx, size, value):
    """Edit the cmod copy and realise; the first compile's exec, and its step's start from the events."""
    realise = ctx.realise(size)

    def warm():
        gen.edit_impl(size.proj_cmod, WARM_EDIT + value)
        quietly(realise, size.proj_cmod, size.env)
        gen.edit_impl(size.proj_cmod, value)

    out = ctx.warm_timed(warm, realise, size.proj_cmod, size.env, rss=True, execs=True)
    messages = cmod_messages(out)
    size.add("edit/cmod/wall", out.seconds)
    size.add("edit/cmod/rss_kib", out.rss_kib)
    size.add("edit/cmod/first_compile", out.first_compile)
    size.add("edit/cmod/first_step", cmod_first_step(messages))
    size.add("edit/cmod/clock_offset", clock_offset(messages))
    size.add("edit/cmod/built", cmod_built(messages))
    check_binary(size, "cmod", value, harness.cmod_binary(size.proj_cmod))


def edit_phase(ctx, size):
    """Interleaved rebuilds after one implementation-unit edit, edit values 1..runs on both sides."""
    for value in range(1, ctx.args.runs + 1):
        if ctx.cmake:
            edit_ninja(ctx, size, value)
        edit_cmod(ctx, size, value)


def eval_phase(ctx, size):
    """`cmod eval` on the built project: wall time and cmod's peak RSS."""
    for _ in range(ctx.args.runs):
        out = ctx.timed([ctx.args.cmod, "eval", "--store", str(size.store)], size.proj_cmod, size.env, rss=True)
        size.add("eval/wall", out.seconds)
        size.add("eval/rss_kib", out.rss_kib)


def dry_run_phase(ctx, size):
    """`cmod realise --dry-run` after a new one-line edit each time (values above the built ones)."""
    for value in range(ctx.args.runs + 1, 2 * ctx.args.runs + 1):
        gen.edit_impl(size.proj_cmod, value)
        out = ctx.timed(ctx.realise(size, "--dry-run"), size.proj_cmod, size.env, rss=True)
        size.add("dry_run/wall", out.seconds)
        size.add("dry_run/rss_kib", out.rss_kib)
        size.add("dry_run/would_build", cmod_messages(out)[-1][1]["would_build"])


PHASES = (cold_phase, noop_phase, edit_phase, eval_phase, dry_run_phase)


def evaluation_only(ctx, size):
    """Sizes above --no-build-above: no build at all. One untimed `cmod eval` fills the
    toolchain and scan caches of an empty store; then eval and dry-run are measured."""
    size.fresh_store("eval")
    subprocess.run([ctx.args.cmod, "eval", "--store", str(size.store)], cwd=size.proj_cmod,
                   env=size.env, stdout=subprocess.DEVNULL, check=True)
    size.notes.append(f"{size.tus:,} TUs: nothing built (above --no-build-above "
                      f"{ctx.args.no_build_above}); eval and dry-run on a store with warm "
                      "evaluator caches and no outputs, so the dry-run predicts every step.")
    return (eval_phase, dry_run_phase)


def stand_in_only(ctx, size):
    """Sizes above --stand-in-above: filled through the stand-in compiler (stand_in.py),
    then only what never reads outputs is measured: no-op, eval and dry-run."""
    stand_in.install()
    stand_in.use_in_manifest(size.proj_cmod)
    return (stand_in_fill, noop_phase, eval_phase, dry_run_phase)


def stand_in_fill(ctx, size):
    """The stand-in fill of both sides (stand_in.fill, with this module's runner)."""
    stand_in.fill(ctx, size, measure, cmod_messages)


def bench_size(ctx, size):
    """Generate both copies of the project and run every phase; a failure becomes a note."""
    if size.kept_fill():
        # Back to the generated sources on both sides (an earlier run left each at its
        # own last edit value, cmod's at its last dry-run's), so the fill's binaries agree.
        gen.edit_impl(size.proj_cmake, 0)
        gen.edit_impl(size.proj_cmod, 0)
        harness.log(f"{size.tus} TUs in {size.dir}: keeping its projects and fill (--keep-fill)")
    else:
        shutil.rmtree(size.dir, ignore_errors=True)
        gen.generate(size.proj_cmake, size.params)
        gen.generate(size.proj_cmod, size.params)
        harness.log(f"{size.tus} TUs in {size.dir}")
    phase = evaluation_only
    try:
        if size.stand_in:
            phases = stand_in_only(ctx, size)
        else:
            phases = PHASES if size.built else evaluation_only(ctx, size)
        for phase in phases:
            phase(ctx, size)
    except (RuntimeError, OSError, StopIteration) as err:
        harness.log(f"{size.tus} TUs failed: {err}")
        size.notes.append(f"{size.tus:,} TUs: FAILED in {phase.__name__}: {str(err).splitlines()[0]}")


# ---------------------------------------------------------------- report


def fmt_rss(kib):
    """KiB as MiB."""
    return f"{kib / 1024:.0f} MiB"


def fmt_cell(size, key, fmt):
    """Median of `key`'s samples, then the samples; why there are none, if there are none."""
    values = size.samples.get(key)
    if not values:
        return "skipped" if key.startswith("cold/") and not size.cold else "—"
    text = fmt(statistics.median(values))
    if len(values) > 1:
        text += " (" + ", ".join(fmt(v) for v in values) + ")"
    return text


def ratio_cell(size, num, den):
    """Ratio of two keys' medians."""
    a, b = size.samples.get(num), size.samples.get(den)
    return f"{statistics.median(a) / statistics.median(b):.2f}×" if a and b else "—"


def code(command):
    """A command as Markdown inline code."""
    return f"`{command}`"


def rows(args):
    """(label, command in Markdown, cell function) per table row; `$W` is the column's work dir."""
    ninja = f"ninja -C $W/build-cmake -j{args.jobs}"
    realise = f"cmod realise -j{args.jobs} --store $W/cmod-store-N --message-format json"
    edit_cmake = f"python3 bench/gen.py $W/proj-cmake --edit-impl --edit-value N && {ninja}"
    edit_cmod = f"python3 bench/gen.py $W/proj-cmod --edit-impl --edit-value N && {realise}"
    configure = ("cmake -S $W/proj-cmake -B $W/build-cmake -G Ninja -DCMAKE_MAKE_PROGRAM=$V/ninja "
                 f"-DCMAKE_CXX_COMPILER={harness.CLANG} -DCMAKE_CXX_COMPILER_CLANG_SCAN_DEPS={harness.SCAN_DEPS}")
    evaluate = "cmod eval --store $W/cmod-store-N"
    dry = f"{edit_cmod} --dry-run"

    def val(key, fmt=harness.fmt_time):
        return lambda size: fmt_cell(size, key, fmt)

    def cmp(num, den):
        return lambda size: ratio_cell(size, num, den)

    ratio = "ratio of the medians above"
    return [
        ("cold build, wall: ninja", f"fresh configure, then {code(ninja)}", val("cold/ninja/wall")),
        ("cold build, wall: cmod", f"{code(realise)}, empty store and caches", val("cold/cmod/wall")),
        ("cold build, wall: cmod / ninja", ratio, cmp("cold/cmod/wall", "cold/ninja/wall")),
        ("cold build, CPU: ninja", code(ninja), val("cold/ninja/cpu")),
        ("cold build, CPU: cmod", code(realise), val("cold/cmod/cpu")),
        ("cold build, CPU: cmod / ninja", ratio, cmp("cold/cmod/cpu", "cold/ninja/cpu")),
        ("cold build, to first compile's exec: ninja", f"{code(ninja)}; kernel exec events",
         val("cold/ninja/first_compile")),
        ("cold build, to first compile's exec: cmod", f"{code(realise)}; kernel exec events",
         val("cold/cmod/first_compile")),
        ("CMake configure (not in cold)", code(configure), val("configure")),
        ("no-op: ninja", code(ninja), val("noop/ninja/wall")),
        ("no-op: cmod", code(realise), val("noop/cmod/wall")),
        ("no-op: cmod / ninja", ratio, cmp("noop/cmod/wall", "noop/ninja/wall")),
        ("edit, whole: ninja", code(edit_cmake), val("edit/ninja/wall")),
        ("edit, whole: cmod", code(edit_cmod), val("edit/cmod/wall")),
        ("edit, whole: cmod / ninja", ratio, cmp("edit/cmod/wall", "edit/ninja/wall")),
        ("edit, to first compile's exec: ninja", f"{code(edit_cmake)}; kernel exec events",
         val("edit/ninja/first_compile")),
        ("edit, to first compile's exec: cmod", f"{code(edit_cmod)}; kernel exec events",
         val("edit/cmod/first_compile")),
        ("edit, to first compile's exec: cmod / ninja", ratio,
         cmp("edit/cmod/first_compile", "edit/ninja/first_compile")),
        ("edit, to first compile edge: ninja", f"{code(edit_cmake)}; `.ninja_log`",
         val("edit/ninja/log_first_compile")),
        ("edit, to first edge (a scan): ninja", f"{code(edit_cmake)}; `.ninja_log`",
         val("edit/ninja/log_first_edge")),
        ("edit, to first compile step: cmod", f"{code(edit_cmod)}; `built` events",
         val("edit/cmod/first_step")),
        ("cmod eval: wall", code(evaluate), val("eval/wall")),
        ("cmod eval: peak RSS", code(evaluate), val("eval/rss_kib", fmt_rss)),
        ("dry-run after an edit: wall", code(dry), val("dry_run/wall")),
        ("dry-run after an edit: peak RSS", code(dry), val("dry_run/rss_kib", fmt_rss)),
        ("cmod realise peak RSS: cold", code(realise), val("cold/cmod/rss_kib", fmt_rss)),
        ("cmod realise peak RSS: edit", code(edit_cmod), val("edit/cmod/rss_kib", fmt_rss)),
    ]


def table(sizes, args):
    """Markdown table: one row per measurement, one column per size."""
    lines = ["| measurement | command | " + " | ".join(f"{s.tus:,} TUs" for s in sizes) + " |",
             "|" + " --- |" * (len(sizes) + 2)]
    for label, command, cell in rows(args):
        lines.append(f"| {label} | {command} | " + " | ".join(cell(s) for s in sizes) + " |")
    return "\n".join(lines)


def verdict(size):
    """Whether both sides' binaries printed the same checksums at every edit state."""
    if not size.outputs.by_edit:
        return "not checked"
    if size.outputs.ok():
        return "agree"
    return "PROBLEM: " + ("; ".join(size.outputs.mismatches) or "the edit did not change the output")


def notes(sizes):
    """Per-size notes, and whether the exec times could be measured at all."""
    found = [n for s in sizes for n in s.notes]
    if ExecWatcher.unavailable:
        found.append(f"Kernel process events unavailable ({ExecWatcher.unavailable}; needs root): "
                     "no exec times")
    return found


def header(ctx, sizes, cmod_version):
    """The lines above the table: when, how, on what, with which tools and options."""
    args = ctx.args
    git = ctx.commit
    cmake, ninja = ctx.tools
    tools = (f"{harness.first_line([cmake, '--version'])}, ninja {harness.first_line([ninja, '--version'])}, "
             if ctx.cmake else "CMake skipped (--skip-cmake), ")
    shapes = "; ".join(f"M = {s.params.modules}: {s.tus:,} TUs" for s in sizes)
    return f"""Measured {datetime.date.today().isoformat()} at commit {git} with:

    {shlex.join(["python3", "bench/scale.py", *sys.argv[1:]])}

- Machine: {harness.machine()}.
- Tools: {tools}cmod: {cmod_version} (`{args.cmod}`).
- Projects: `python3 bench/gen.py $W/proj-cmake` (and `$W/proj-cmod`) with
  `{gen.shape_flags(types.SimpleNamespace(modules="M", **SHAPE))}`;
  {shapes}. `-std=c++20 -O1`, no `-g` on both sides (gen.py's `[profile.dev]` for cmod, its
  `-O1` and no build type for CMake, as bench/run.py), `-j{args.jobs}` everywhere.
- Runs: cold {args.cold_runs}× per side, the rest {args.runs}× each, cmod and ninja runs
  interleaved; medians, samples in parentheses. Shared machine: {ctx.quiet.summary()}.
- Outputs (checksums of both sides' binaries at every edit state): """ + ", ".join(
        f"{s.tus:,} TUs {verdict(s)}" for s in sizes) + "." + "".join(f"\n- {n}." for n in notes(sizes))


METHOD = """\
`$W` is `bench/work/scale/m<M>` of the column, `$V` is `bench/work/venv/bin`, and every
cmod command runs in `$W/proj-cmod` with run.py's `cmod_env` (`XDG_CACHE_HOME`,
`XDG_DATA_HOME`, `XDG_STATE_HOME` under `$W/cmod-home-N`); `N` is the run's store or edit
value.

Method. *Cold*: ninja on a freshly configured build dir, cmod with an empty store and
caches (a new one per run). *CPU* is user+sys of the command's whole process tree (its
`wait4` rusage). *Edit*: `gen.py --edit-impl` changes one statement in the last module's
implementation unit, a new value per run, the same values on both sides. *Warm-up*: this VM
evicts file data left idle for some seconds, so after the quiet wait each timed no-op and
edit is preceded, untimed, by the same kind of run on the same side (a no-op; an edit with
value 1000 + N then rebuilt), and measures the edit loop with warm caches, as a developer
sees it. Cold builds get no warm-up. *To first
compile's exec* counts from the spawn of the command to the exec of the first `clang++ ...
-c` (or `--precompile`, cmod's BMI steps) among its descendants, both on CLOCK_MONOTONIC:
the kernel's proc connector (netlink, root only) reports every fork and exec with a
timestamp, and the harness follows the command's process tree. The other rows show what
each tool records itself. Ninja's `.ninja_log` gives each edge's start in ms from ninja's
own start; the first edge of any kind is the `clang-scan-deps` scan of the edited file,
the first compile edge the one producing an object or BMI. cmod's `built` events give
`started_secs`, counted from its progress clock (started once the store is open; its
offset from the spawn, a few ms, is the smallest `arrival − started_secs − elapsed_secs`
over the `built` and `finished` lines, each written as soon as its `elapsed_secs` is
taken). A step starts when a worker takes it, before its cache lookup, build directory and
sandbox, so the compile step's start precedes the compiler's exec; cmod's own scan of the
edited file runs earlier, during evaluation. *Peak RSS* is cmod's own `VmHWM` (its build
steps and scans are other processes), sampled from `/proc` every 5 ms (GNU time's exact
figure for `cmod eval`, which starts no process, agreed within 2% in a check). *eval* runs
on the built, unchanged project; the *dry-run* follows a new edit each time and builds
nothing.
"""


def render(ctx, sizes, cmod_version):
    """The whole section as Markdown."""
    return f"{SECTION}\n\n{header(ctx, sizes, cmod_version)}\n\n{table(sizes, ctx.args)}\n\n{METHOD}"


# ---------------------------------------------------------------- main


def parse_args(argv):
    """Command-line interface."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="120,600,2000",
                    type=lambda s: [int(m) for m in s.split(",")], help="module counts (5M+1 TUs each)")
    ap.add_argument("--runs", type=int, default=3, help="repetitions of no-op, edit, eval and dry-run")
    ap.add_argument("--cold-runs", type=int, default=2, help="repetitions of cold builds")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--cmod", default=os.environ.get("CMOD_BIN", str(harness.REPO / "target" / "release" / "cmod")),
                    help="cmod binary (default $CMOD_BIN, else target/release/cmod)")
    ap.add_argument("--no-cold-above", type=int, metavar="TUS",
                    help="no timed cold builds for sizes above TUS translation units")
    ap.add_argument("--no-build-above", type=int, metavar="TUS",
                    help="sizes with more TUs build nothing: only eval and dry-run are measured")
    ap.add_argument("--stand-in-above", type=int, metavar="TUS",
                    help="sizes with more TUs are filled through a stand-in compiler that writes placeholder "
                         "outputs (bench/stand_in.py); only no-op, eval and dry-run are measured")
    ap.add_argument("--keep-fill", action="store_true",
                    help="sizes above --no-cold-above keep the projects, store and build dir an earlier run "
                         "(or an interrupted fill) left and complete them, instead of starting over")
    ap.add_argument("--skip-cmake", action="store_true", help="measure cmod only")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    ap.add_argument("--quiet-wait", type=float, default=30,
                    help="seconds to wait for other processes to leave the CPUs idle before each run")
    ap.set_defaults(skip_cmod=False)  # for run.py's cmod_status
    return ap.parse_args(argv)


def write_json(ctx, sizes):
    """Every sample, per size, to bench/work/scale-results.json."""
    data = {"command": ["python3", "bench/scale.py", *sys.argv[1:]], "date": datetime.date.today().isoformat(),
            "cmod": ctx.args.cmod, "jobs": ctx.args.jobs, "quiet": ctx.quiet.summary(),
            "sizes": {str(s.tus): s.to_json() for s in sizes}}
    RESULTS_JSON.write_text(json.dumps(data, indent=1))


def main(argv=None):
    """Measure every size, report, record."""
    args = parse_args(argv)
    usable, note, cmod_version = harness.cmod_status(args)
    if not usable:
        print(note.strip("\n- "), file=sys.stderr)
        return 2
    SCALE.mkdir(parents=True, exist_ok=True)
    tools = harness.ensure_venv() if not args.skip_cmake else (None, None)
    ctx = Context(args, harness.Quiet(args.quiet_wait), tools)
    sizes = [Size(m, args) for m in args.sizes]
    for size in sizes:
        bench_size(ctx, size)
        write_json(ctx, sizes)  # after every size, so a long run's finished sizes survive
    section = render(ctx, sizes, cmod_version)
    print(section)
    if not args.no_write:
        harness.write_section(harness.RESULTS, section, SECTION)
        harness.log(f"wrote {harness.RESULTS.relative_to(harness.REPO)}")
    failed = any(s.outputs.mismatches or any("FAILED" in n for n in s.notes) for s in sizes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
