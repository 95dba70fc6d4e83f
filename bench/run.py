#!/usr/bin/env python3
"""Benchmark `cmod realise` against CMake 4 + Ninja on one generated project.

Generates the synthetic C++20 modules project (bench/gen.py) twice with the
same parameters, one copy per build system, then measures, with clang-19 and
-j<jobs> on both sides:

* cold build, no-op rebuild, rebuild after one implementation-unit edit, for
  `ninja` run directly, `cmake --build`, and `cmod realise`;
* the raw compiler floor: the compile, archive and link commands CMake
  generated, replayed from a fresh start by a small dependency-ordered
  scheduler, without scanning, collation or any build-system bookkeeping.

Both binaries (and the floor's) must print the same checksum at every edit
state. Medians are printed as a table and written into bench/RESULTS.md under
"Build benchmark (issue 2)"; other sections of that file are kept. Work dirs
live under bench/work/. See bench/README.md.
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import gen

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "work"
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## Build benchmark (issue 2)"
CLANG = "clang++-19"
SCAN_DEPS = "/usr/bin/clang-scan-deps-19"
BIN = "synth"


# ----------------------------------------------------------------- utilities


def log(msg):
    """Progress message on stderr."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def cpu_seconds():
    """(CPU seconds busy on the whole machine, CPU seconds used by this process and its children)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    machine = (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    own = sum(getattr(resource.getrusage(who), f)
              for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for f in ("ru_utime", "ru_stime"))
    return machine, own


class Quiet:
    """Times runs on a shared machine: waits for idle CPUs first, then measures what others used.

    Other processes' CPU use during a run is the machine's busy time minus ours. A run during
    which others used more than `threshold` of one CPU on average is counted as noisy.
    """

    MIN_WINDOW = 1.0  # seconds: /proc/stat counts in 10 ms ticks, too coarse for a 5 ms no-op

    def __init__(self, max_wait, threshold=0.1):
        self.max_wait = max_wait
        self.threshold = threshold
        self.runs = 0
        self.noisy = 0
        self.worst = 0.0

    def foreign_load(self, interval):
        """Average CPUs used by other processes over the next `interval` seconds."""
        machine0, own0 = cpu_seconds()
        time.sleep(interval)
        machine1, own1 = cpu_seconds()
        return max(0.0, (machine1 - machine0) - (own1 - own0)) / interval

    def wait(self):
        """Block until other processes leave the CPUs idle, or `max_wait` seconds pass."""
        start = time.monotonic()
        while self.foreign_load(0.5) > self.threshold:
            if time.monotonic() - start > self.max_wait:
                log(f"machine still busy after {self.max_wait:.0f} s; measuring anyway")
                return

    def timed(self, fn, *args, **kwargs):
        """Call `fn` after waiting for idle CPUs; return (its result, CPU seconds of our process tree).

        Also records the load other processes put on the machine during the call.
        """
        return self.timed_after(None, fn, *args, **kwargs)

    def timed_after(self, prepare, fn, *args, **kwargs):
        """`timed`, with `prepare()` (if any) run untimed between the wait and the call."""
        self.wait()
        if prepare is not None:
            prepare()
        machine0, own0 = cpu_seconds()
        start = time.monotonic()
        result = fn(*args, **kwargs)
        time.sleep(max(0.0, start + self.MIN_WINDOW - time.monotonic()))  # clock ticks are coarse
        window = time.monotonic() - start
        machine1, own1 = cpu_seconds()
        load = max(0.0, (machine1 - machine0) - (own1 - own0)) / window
        self.runs += 1
        self.worst = max(self.worst, load)
        if load > self.threshold:
            self.noisy += 1
            log(f"noisy run: other processes used {load:.2f} CPUs meanwhile")
        return result, own1 - own0

    def summary(self):
        """One sentence for the report."""
        return (f"{self.noisy} of {self.runs} timed runs had other processes using more than "
                f"{self.threshold:.1f} CPU on average (worst {self.worst:.2f})")


def run(cmd, cwd, env=None):
    """Run `cmd`; return (wall seconds, stdout). Exit non-zero raises with the output."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(map(str, cmd))} (in {cwd}) exited {proc.returncode}\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return seconds, proc.stdout


def first_line(cmd):
    """First line of a command's output, or '?' if it cannot run."""
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
        return out.strip().splitlines()[0] if out.strip() else "?"
    except OSError:
        return "?"


def median(samples):
    """Median of a non-empty list, or None for an empty one."""
    return statistics.median(samples) if samples else None


class Series:
    """Repeated samples of one measurement: wall seconds, work done and CPU seconds per run."""

    def __init__(self):
        self.seconds = []
        self.work = []
        self.cpu = []

    def add(self, seconds, work=None, cpu=None):
        """Record one run."""
        self.seconds.append(seconds)
        self.work.append(work)
        if cpu is not None:
            self.cpu.append(cpu)

    def median(self, attr="seconds"):
        """Median wall time (or, with attr="cpu", CPU time) in seconds."""
        return median(getattr(self, attr))

    def to_json(self):
        """Plain-data form for results.json."""
        return {"seconds": self.seconds, "work": self.work, "cpu": self.cpu}


class Outputs:
    """Binary outputs per edit state; every builder must agree at each state."""

    def __init__(self):
        self.by_edit = {}
        self.mismatches = []

    def check(self, who, edit, output):
        """Record `output` of `who` at edit value `edit`, comparing with earlier ones."""
        expected = self.by_edit.setdefault(edit, (who, output))
        if expected[1] != output:
            self.mismatches.append(f"edit {edit}: {expected[0]} printed {expected[1]!r}, {who} printed {output!r}")
            log(f"MISMATCH {self.mismatches[-1]}")

    def ok(self):
        """True when every comparison agreed and the edit changed the output."""
        changed = len({out for _, out in self.by_edit.values()}) > 1
        return not self.mismatches and changed


def binary_output(path):
    """Run a built `synth` binary and return what it prints."""
    return run([str(path)], cwd=path.parent)[1].strip()


# --------------------------------------------------------------- CMake+Ninja


def ensure_venv():
    """Create bench/work/venv with `pip install cmake ninja` once; return (cmake, ninja)."""
    venv = WORK / "venv"
    cmake, ninja = venv / "bin" / "cmake", venv / "bin" / "ninja"
    if not (cmake.exists() and ninja.exists()):
        log("installing cmake and ninja into bench/work/venv")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "cmake", "ninja"], check=True)
    return cmake, ninja


def configure(tools, src, build, compiler=CLANG):
    """Fresh CMake configure of `src` into `build` with `compiler`; returns wall seconds."""
    cmake, ninja = tools
    shutil.rmtree(build, ignore_errors=True)
    cmd = [
        cmake, "-S", src, "-B", build, "-G", "Ninja",
        f"-DCMAKE_MAKE_PROGRAM={ninja}",
        f"-DCMAKE_CXX_COMPILER={compiler}",
        f"-DCMAKE_CXX_COMPILER_CLANG_SCAN_DEPS={SCAN_DEPS}",
    ]
    return run(cmd, cwd=WORK)[0]


def ninja_edges(stdout):
    """Number of edges Ninja ran, from its `[i/n]` status lines."""
    return sum(1 for line in stdout.splitlines() if re.match(r"\[\d+/\d+\]", line))


def build_cmd(tools, driver, build, jobs):
    """The build command for `driver` ('ninja' or 'cmake --build')."""
    cmake, ninja = tools
    if driver == "ninja":
        return [ninja, "-C", build, f"-j{jobs}"]
    return [cmake, "--build", build, "-j", str(jobs)]


DRIVERS = ("ninja", "cmake --build")


def bench_cmake(tools, project, build, args, quiet, outputs):
    """Cold, no-op and edit series for both drivers; returns ({name: Series}, last edit value)."""
    res = {"configure": Series()}
    for driver in DRIVERS:
        res[f"cold/{driver}"] = Series()
        for _ in range(args.cold_runs):
            res["configure"].add(configure(tools, project, build))
            (secs, out), cpu = quiet.timed(run, build_cmd(tools, driver, build, args.jobs), cwd=WORK)
            res[f"cold/{driver}"].add(secs, ninja_edges(out), cpu)
            log(f"cmake cold ({driver}): {secs:.2f} s")
    outputs.check("cmake+ninja", 0, binary_output(build / BIN))
    for driver in DRIVERS:
        res[f"noop/{driver}"] = Series()
        for _ in range(args.runs):
            (secs, out), cpu = quiet.timed(run, build_cmd(tools, driver, build, args.jobs), cwd=WORK)
            res[f"noop/{driver}"].add(secs, ninja_edges(out), cpu)
    edit = 0
    for driver in DRIVERS:
        res[f"edit/{driver}"] = Series()
        for _ in range(args.runs):
            edit += 1
            gen.edit_impl(project, edit)
            (secs, out), cpu = quiet.timed(run, build_cmd(tools, driver, build, args.jobs), cwd=WORK)
            res[f"edit/{driver}"].add(secs, ninja_edges(out), cpu)
            outputs.check("cmake+ninja", edit, binary_output(build / BIN))
        log(f"cmake no-op ({driver}) {res[f'noop/{driver}'].median() * 1e3:.0f} ms, "
            f"edit {res[f'edit/{driver}'].median():.2f} s")
    return res, edit


# ------------------------------------------------------------- compiler floor


class Job:
    """One compile, archive or link command replayed for the floor."""

    def __init__(self, command, build):
        self.command = command
        self.inputs, self.outputs = job_files(command, build)
        self.deps = []
        self.seconds = 0.0
        self.priority = 0.0


def modmap_args(command, build):
    """Arguments read from the `@file.modmap` response file of a compile command."""
    args = []
    for token in shlex.split(command):
        if token.startswith("@") and token.endswith(".modmap"):
            args += shlex.split((build / token[1:]).read_text())
    return args


def job_files(command, build):
    """(inputs, outputs) of a command, as normalised paths relative to `build`."""
    tokens = shlex.split(command) + modmap_args(command, build)
    outputs, inputs = set(), set()
    for i, tok in enumerate(tokens):
        if tok == "-o" and i + 1 < len(tokens):
            outputs.add(os.path.normpath(tokens[i + 1]))
        elif tok.startswith("-fmodule-output="):
            outputs.add(os.path.normpath(tok.split("=", 1)[1]))
        elif tok.startswith("-fmodule-file="):
            inputs.add(os.path.normpath(tok.split("=", 2)[-1]))
        elif tok.endswith((".o", ".a")):
            inputs.add(os.path.normpath(tok))
    if not outputs:  # the archive command: `llvm-ar qc lib.a objs...`
        archive = next(t for t in tokens if t.endswith(".a"))
        outputs.add(os.path.normpath(archive))
    return inputs - outputs, outputs


def floor_jobs(tools, build):
    """The compile, archive and link commands of the build, with dependencies wired."""
    _, ninja = tools
    listing = run([ninja, "-C", build, "-t", "commands", BIN], cwd=WORK)[1]
    skip = ("clang-scan-deps", "cmake_ninja_dyndep")
    jobs = [Job(line, build) for line in listing.splitlines() if line and not any(s in line for s in skip)]
    producer = {out: job for job in jobs for out in job.outputs}
    for job in jobs:
        job.deps = list({id(producer[i]): producer[i] for i in job.inputs if i in producer}.values())
    return jobs


def remove_outputs(jobs, build):
    """Delete every output of the replayed jobs so the floor starts from nothing."""
    for job in jobs:
        for out in job.outputs:
            (build / out).unlink(missing_ok=True)


def set_priorities(jobs):
    """Critical-path priority: a job's own time plus its longest chain of dependants."""
    dependants = {id(j): [] for j in jobs}
    for job in jobs:
        for dep in job.deps:
            dependants[id(dep)].append(job)
    for job in reversed(topological(jobs)):
        job.priority = job.seconds + max((d.priority for d in dependants[id(job)]), default=0.0)


def topological(jobs):
    """Jobs in an order where every job follows its dependencies."""
    done, order = set(), []

    def visit(job):
        if id(job) in done:
            return
        done.add(id(job))
        for dep in job.deps:
            visit(dep)
        order.append(job)

    for job in jobs:
        visit(job)
    return order


def run_job(job, build):
    """Run one job through the shell, as Ninja does; record its wall time."""
    start = time.perf_counter()
    proc = subprocess.run(["/bin/sh", "-c", job.command], cwd=build,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    job.seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"floor job failed: {job.command}\n{proc.stderr[-3000:]}")


def replay(jobs, build, parallel):
    """Run all jobs, `parallel` at a time, highest priority first among ready ones; wall seconds."""
    waiting = {id(j): len(j.deps) for j in jobs}
    dependants = {id(j): [] for j in jobs}
    for job in jobs:
        for dep in job.deps:
            dependants[id(dep)].append(job)
    ready = [j for j in jobs if not j.deps]
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        running = {}
        while ready or running:
            ready.sort(key=lambda j: j.priority)
            while ready and len(running) < parallel:
                job = ready.pop()
                running[pool.submit(run_job, job, build)] = job
            finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for fut in finished:
                fut.result()
                for dependant in dependants[id(running.pop(fut))]:
                    waiting[id(dependant)] -= 1
                    if waiting[id(dependant)] == 0:
                        ready.append(dependant)
    return time.perf_counter() - start


def bench_floor(tools, build, args, quiet, outputs, edit):
    """An untimed calibration replay (each command's time), then timed critical-path-first replays."""
    jobs = floor_jobs(tools, build)
    res = {"floor/jobs": Series()}
    remove_outputs(jobs, build)
    quiet.wait()
    replay(jobs, build, args.jobs)
    set_priorities(jobs)
    for _ in range(args.cold_runs):
        remove_outputs(jobs, build)
        secs, cpu = quiet.timed(replay, jobs, build, args.jobs)
        res["floor/jobs"].add(secs, len(jobs), cpu)
    outputs.check("floor", edit, binary_output(build / BIN))
    log(f"floor: -j{args.jobs} {res['floor/jobs'].median():.2f} s ({len(jobs)} commands)")
    return res


# ----------------------------------------------------------------------- cmod


def cmod_env(home):
    """Environment isolating cmod's caches under `home` (wiped for cold runs)."""
    env = dict(os.environ)
    env.update({
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
    })
    env.pop("CMOD_STORE", None)
    return env


def realise(cmod, project, store, env, jobs):
    """`cmod realise` with JSON messages; returns (seconds, derivations built)."""
    cmd = [cmod, "realise", f"-j{jobs}", "--store", store, "--message-format", "json"]
    secs, out = run(cmd, cwd=project, env=env)
    messages = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if not messages or messages[-1].get("reason") != "finished" or not messages[-1].get("success"):
        raise RuntimeError(f"cmod realise did not finish successfully:\n{out[-3000:]}")
    return secs, sum(1 for m in messages if m.get("reason") == "built")


def cmod_binary(project):
    """The `synth` executable the `result` out-link points at."""
    result = (project / "result").resolve()
    if result.is_file():
        return result
    return next(p for p in sorted(result.rglob(BIN)) if p.is_file() and os.access(p, os.X_OK))


def bench_cmod(cmod, project, args, quiet, outputs):
    """Cold (fresh store and caches), no-op and edit series for `cmod realise`."""
    res = {"cold/cmod": Series(), "noop/cmod": Series(), "edit/cmod": Series()}
    for path in WORK.glob("cmod-*"):
        shutil.rmtree(path, ignore_errors=True)
    for run_index in range(args.cold_runs):
        # A fresh store per cold run, nothing deleted between timed runs: ext4 slows inode
        # allocation for a while after mass deletions.
        home, store = WORK / f"cmod-home-{run_index}", WORK / f"cmod-store-{run_index}"
        env = cmod_env(home)
        shutil.rmtree(project / ".cmod", ignore_errors=True)
        (project / "result").unlink(missing_ok=True)
        (secs, built), cpu = quiet.timed(realise, cmod, project, store, env, args.jobs)
        res["cold/cmod"].add(secs, built, cpu)
        log(f"cmod cold: {res['cold/cmod'].seconds[-1]:.2f} s")
    outputs.check("cmod", 0, binary_output(cmod_binary(project)))
    for _ in range(args.runs):
        (secs, built), cpu = quiet.timed(realise, cmod, project, store, env, args.jobs)
        res["noop/cmod"].add(secs, built, cpu)
    for edit in range(1, args.runs + 1):
        gen.edit_impl(project, edit)
        (secs, built), cpu = quiet.timed(realise, cmod, project, store, env, args.jobs)
        res["edit/cmod"].add(secs, built, cpu)
        outputs.check("cmod", edit, binary_output(cmod_binary(project)))
    log(f"cmod no-op {res['noop/cmod'].median() * 1e3:.0f} ms, edit {res['edit/cmod'].median():.2f} s")
    return res


# -------------------------------------------------------------------- report


def fmt_time(seconds):
    """Seconds as a short human string (ms below one second)."""
    if seconds is None:
        return "—"
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_series(series):
    """Median, then all samples and the work count when there is one."""
    if series is None or not series.seconds:
        return "not measured"
    text = fmt_time(series.median())
    if len(series.seconds) > 1:
        text += " (" + ", ".join(fmt_time(s) for s in series.seconds) + ")"
    if series.cpu:
        text += f"; CPU {fmt_time(series.median('cpu'))}"
    work = {w for w in series.work if w is not None}
    if work:
        text += f"; {'/'.join(str(w) for w in sorted(work))} ran"
    return text


def ratio(res, num, den, attr="seconds"):
    """Ratio of two series' medians (wall, or CPU with attr="cpu"), or 'pending' if one is missing."""
    a, b = median_of(res, num, attr), median_of(res, den, attr)
    return "pending" if a is None or b is None else f"{a / b:.2f}×"


def median_of(res, key, attr="seconds"):
    """Median of series `key`, or the sum of medians for 'a+b'; None if any is missing."""
    parts = [res.get(k) for k in key.split("+")]
    if not all(p and getattr(p, attr) for p in parts):
        return None
    return sum(p.median(attr) for p in parts)


def table(res, jobs):
    """Markdown table of the medians."""
    rows = [
        "| measurement | ninja | cmake --build | cmod realise |",
        "| --- | --- | --- | --- |",
    ]
    for kind, label in (("cold", "cold build"), ("noop", "no-op rebuild"), ("edit", "one impl-unit edit")):
        cells = [fmt_series(res.get(f"{kind}/{d}")) for d in (*DRIVERS, "cmod")]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    rows.append(f"| CMake configure (not in cold) | {fmt_series(res.get('configure'))} | | |")
    rows.append(f"| raw compiler floor, -j{jobs} replay | {fmt_series(res.get('floor/jobs'))} | | |")
    floor_cpu = median_of(res, "floor/jobs", "cpu")
    if floor_cpu is not None:
        rows.append(f"| raw compiler floor, CPU / {jobs} | {fmt_time(floor_cpu / jobs)} | | |")
    return "\n".join(rows)


def ratios(res):
    """Markdown list of the ratios the issue asks for."""
    lines = [
        f"- cmod / ninja: cold {ratio(res, 'cold/cmod', 'cold/ninja')}, "
        f"no-op {ratio(res, 'noop/cmod', 'noop/ninja')}, edit {ratio(res, 'edit/cmod', 'edit/ninja')}",
        f"- cmod / cmake --build: cold {ratio(res, 'cold/cmod', 'cold/cmake --build')}, "
        f"no-op {ratio(res, 'noop/cmod', 'noop/cmake --build')}, "
        f"edit {ratio(res, 'edit/cmod', 'edit/cmake --build')}",
        f"- cold vs floor (-j replay): ninja {ratio(res, 'cold/ninja', 'floor/jobs')}, "
        f"cmod {ratio(res, 'cold/cmod', 'floor/jobs')}",
        f"- cmod cold / (CMake configure + ninja cold): {ratio(res, 'cold/cmod', 'configure+cold/ninja')}",
        f"- CPU time (user+sys of the process tree; less sensitive to other load than wall time): "
        f"cold cmod / ninja {ratio(res, 'cold/cmod', 'cold/ninja', 'cpu')}, "
        f"ninja / floor {ratio(res, 'cold/ninja', 'floor/jobs', 'cpu')}, "
        f"cmod / floor {ratio(res, 'cold/cmod', 'floor/jobs', 'cpu')}",
    ]
    return "\n".join(lines)


def machine():
    """One-paragraph description of the machine and tool versions."""
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "?")
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    osname = next((l.split("=", 1)[1].strip('"') for l in Path("/etc/os-release").read_text().splitlines()
                   if l.startswith("PRETTY_NAME=")), "?")
    return (f"{osname}, Linux {platform.release()}, {os.cpu_count()} × {cpu}, {mem:.0f} GiB RAM; "
            f"{first_line([CLANG, '--version'])}")


def render(res, args, params, cmod_note, outputs, quiet, tools, cmod_version):
    """The whole "Build benchmark (issue 2)" section as Markdown."""
    cmake, ninja = tools
    command = shlex.join(["python3", "bench/run.py", *sys.argv[1:]])
    git = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    if not outputs.by_edit:
        verdict = "not checked (nothing built)"
    elif outputs.ok():
        verdict = "all outputs agree, and the edit changes the output"
    else:
        verdict = "PROBLEM: " + ("; ".join(outputs.mismatches) or "the edit did not change the output")
    return f"""{SECTION}

Measured {datetime.date.today().isoformat()} at commit {git} with:

    {command}

- Machine: {machine()}.
- Tools: {first_line([cmake, '--version'])}, ninja {first_line([ninja, '--version'])}, cmod: {cmod_version}.
- Project: `bench/gen.py {gen.shape_flags(params)}`:
  {params.tu_count()} TUs, `-std=c++20 -O1`, no `-g`, libstdc++, `-j{args.jobs}` everywhere.
- Runs: cold {args.cold_runs}× per driver (fresh build dir / fresh store and caches), no-op and edit
  {args.runs}× each; medians, samples in parentheses; "N ran" is Ninja edges run or cmod
  derivations built. Shared machine: {quiet.summary()}.
- Outputs: {verdict}.{cmod_note}

{table(res, args.jobs)}

{ratios(res)}

Method. *Cold* is the build alone on a configured tree (CMake's configure is listed
separately) or, for cmod, `cmod realise` with an empty store and caches. *No-op* runs the build
again unchanged. *Edit* changes one statement in the body of the last module's
implementation unit (`gen.py --edit-impl`, a new value each run) and rebuilds. The *raw compiler
floor* replays the exact compile, archive and link commands of CMake's build (`ninja -t commands`
minus the `clang-scan-deps` and `cmake_ninja_dyndep` steps; module maps read from the `.modmap`
response files), from an empty output tree, through `/bin/sh` as Ninja does. A scheduler runs
them `-j{args.jobs}` in dependency order (a command waits for the producers of the BMIs it reads),
starting the ready command with the longest remaining critical path first, with each command's
time taken from an untimed calibration replay. That is what a build system with zero overhead and
perfect knowledge would achieve with these one-phase commands. "CPU / {args.jobs}" (the replay's
user+sys time spread over all cores) is the looser bound that ignores dependencies. A serial
replay's summed wall time is no bound here: on this VM it came out about a third above the
commands' CPU time.
cmod's two-phase BMI/object split runs different commands, so its own floor could differ
slightly.
"""


def write_section(path, section, heading=SECTION):
    """Replace (or append) the section under `heading` in RESULTS.md, keeping every other one."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip() + "\n\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")


# ---------------------------------------------------------------------- main


def parse_args(argv):
    """Command-line interface."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    gen.add_shape_args(ap)
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3, help="repetitions of no-op and edit runs")
    ap.add_argument("--cold-runs", type=int, default=2, help="repetitions of cold builds")
    ap.add_argument("--cmod", default=os.environ.get("CMOD_BIN", str(REPO / "target" / "release" / "cmod")),
                    help="cmod binary (default $CMOD_BIN, else target/release/cmod)")
    ap.add_argument("--skip-cmake", action="store_true", help="skip CMake+Ninja and the floor")
    ap.add_argument("--skip-cmod", action="store_true")
    ap.add_argument("--quiet-wait", type=float, default=30,
                    help="seconds to wait for other processes to leave the CPUs idle before each run")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    return ap.parse_args(argv)


def cmod_status(args):
    """(usable, note for the report, version string) for the cmod binary."""
    cmod = Path(args.cmod).resolve()
    args.cmod = str(cmod)
    if args.skip_cmod:
        return False, "\n- cmod: skipped (--skip-cmod).", "not run"
    if not (cmod.is_file() and os.access(cmod, os.X_OK)):
        msg = (f"cmod binary not found at {cmod}: skipping cmod. Build it with "
               f"`cargo build --release`, or pass --cmod PATH / set CMOD_BIN.")
        log(msg)
        return False, f"\n- cmod: not measured ({msg})", "not run"
    built = datetime.datetime.fromtimestamp(cmod.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    return True, "", f"{first_line([str(cmod), '--version'])} (binary built {built})"


def main(argv=None):
    """Generate, measure, verify, report."""
    args = parse_args(argv)
    params = gen.params_from(args)
    WORK.mkdir(parents=True, exist_ok=True)
    use_cmod, cmod_note, cmod_version = cmod_status(args)
    tools = ensure_venv()
    quiet, outputs, res = Quiet(args.quiet_wait), Outputs(), {}
    if not args.skip_cmake:
        project, build = WORK / "proj-cmake", WORK / "build-cmake"
        gen.generate(project, params, force=True)
        log(f"CMake+Ninja on {params.tu_count()} TUs")
        cmake_res, last_edit = bench_cmake(tools, project, build, args, quiet, outputs)
        res.update(cmake_res)
        res.update(bench_floor(tools, build, args, quiet, outputs, last_edit))
    if use_cmod:
        project = WORK / "proj-cmod"
        gen.generate(project, params, force=True)
        log(f"cmod on {params.tu_count()} TUs")
        try:
            res.update(bench_cmod(args.cmod, project, args, quiet, outputs))
        except (RuntimeError, StopIteration, OSError) as err:
            log(f"cmod failed: {err}")
            cmod_note = f"\n- cmod: failed ({str(err).splitlines()[0]}); see the runner's output."
    section = render(res, args, params, cmod_note, outputs, quiet, tools, cmod_version)
    print(section)
    (WORK / "results.json").write_text(json.dumps({k: v.to_json() for k, v in res.items()}, indent=1))
    if not args.no_write:
        write_section(RESULTS, section)
        log(f"wrote {RESULTS.relative_to(REPO)}")
    return 0 if not outputs.mismatches else 1


if __name__ == "__main__":
    sys.exit(main())
