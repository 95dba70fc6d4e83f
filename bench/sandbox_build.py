#!/usr/bin/env python3
"""Benchmark the sandbox on a whole cold build (issue 3).

Generates the synthetic ~200-TU project (bench/gen.py, the same shape as bench/run.py)
and realises it cold (empty store and caches) under each sandbox mode, `--sandbox full`
(namespaces + pivot_root + Landlock), `--sandbox landlock` and `--sandbox off`. The
modes are interleaved round by round so that drift in the machine's speed hits them
alike. Every run writes into a store and cache directory of its own, and nothing is
deleted until all runs are done (ext4 slows inode allocation for a while after mass
deletions, which would penalise whichever mode runs next).

All modes must produce byte-identical binaries (same checksum printed). The result is
written into bench/RESULTS.md under "Sandbox cost on a cold build (issue 3)".

Usage: `cargo build --release && python3 bench/sandbox_build.py [--runs 2]`.
"""

import argparse
import datetime
import os
import shlex
import shutil
import statistics
import sys
from pathlib import Path

import gen
import run as harness

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "work" / "sandbox-build"
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## Sandbox cost on a cold build (issue 3)"
MODES = ("full", "landlock", "off")


def log(msg):
    print(f"[sandbox-build] {msg}", file=sys.stderr, flush=True)


def realise(cmod, project, store, env, jobs, mode):
    """Cold `cmod realise --sandbox MODE`; returns (seconds, derivations built)."""
    cmd = [cmod, "realise", f"-j{jobs}", "--sandbox", mode, "--store", store,
           "--message-format", "json"]
    secs, out = harness.run(cmd, cwd=project, env=env)
    built = sum(1 for line in out.splitlines() if '"reason":"built"' in line)
    if '"reason":"finished"' not in out or built == 0:
        raise RuntimeError(f"cmod realise --sandbox {mode} did not build:\n{out[-3000:]}")
    return secs, built


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    gen.add_shape_args(ap)
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--runs", type=int, default=2, help="cold builds per mode")
    ap.add_argument("--cmod", default=os.environ.get("CMOD_BIN", str(REPO / "target" / "release" / "cmod")))
    ap.add_argument("--quiet-wait", type=float, default=60)
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    return ap.parse_args(argv)


def render(args, params, res, built, quiet, checksum):
    cmd = shlex.join(["python3", "bench/sandbox_build.py", *sys.argv[1:]])
    git = harness.first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    today = datetime.date.today().isoformat()
    med = {m: statistics.median(s for s, _ in res[m]) for m in MODES}
    cpu = {m: statistics.median(c for _, c in res[m]) for m in MODES}
    rows = []
    for m in MODES:
        samples = ", ".join(harness.fmt_time(s) for s, _ in res[m])
        rows.append(f"| `--sandbox {m}` | {harness.fmt_time(med[m])} ({samples}) | "
                    f"{cpu[m]:.2f} s | {built[m]} | {med[m] / med['off']:.3f}× |")
    per_action = (med["full"] - med["off"]) / built["full"] * args.jobs * 1e3
    return f"""{SECTION}

Measured {today} at commit {git} with:

    cargo build --release && {cmd}

- Machine: {harness.machine()}.
  {quiet.summary()}.
- Project: `bench/gen.py {gen.shape_flags(params)}` ({params.tu_count()} TUs), `-j{args.jobs}`,
  cold = empty store and caches (a fresh directory per run); modes interleaved, {args.runs} runs each; medians.
- Every mode's binary printed the same checksum ({checksum}).

| mode | cold wall | CPU (process tree) | derivations built | wall / off |
| --- | --- | --- | --- | --- |
{chr(10).join(rows)}

- full vs off: {(med['full'] / med['off'] - 1) * 100:+.1f} % wall
  ({(med['full'] - med['off']) * 1e3:+.0f} ms, about {per_action:+.1f} ms per action with
  {args.jobs} running at a time); landlock vs off: {(med['landlock'] / med['off'] - 1) * 100:+.1f} %.
- The full sandbox lays out the stable-name links (`src/`, `bmi/`, `obj/`) on a tmpfs inside
  the sandbox, while `landlock` and `off` create them in the host build directory, where
  ext4 makes inode creation slow after the many deletions of a build (docs/SANDBOX.md);
  that can make `full` the fastest mode.
"""


def main(argv=None):
    args = parse_args(argv)
    params = gen.params_from(args)
    cmod = str(Path(args.cmod).resolve())
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    quiet = harness.Quiet(args.quiet_wait)
    res = {m: [] for m in MODES}
    built = {}
    checksum = None
    log(f"generating {params.tu_count()} TUs; waiting for the disk to settle")
    quiet.foreign_load(35)  # let ext4 recover from the cleanup above
    for r in range(args.runs):
        for mode in MODES:
            project = WORK / f"proj-{mode}-{r}"
            gen.generate(project, params, force=True)
            home, store = WORK / f"home-{mode}-{r}", WORK / f"store-{mode}-{r}"
            env = harness.cmod_env(home)
            (secs, n), cpu = quiet.timed(realise, cmod, project, store, env, args.jobs, mode)
            res[mode].append((secs, cpu))
            built[mode] = n
            out = harness.binary_output(harness.cmod_binary(project))
            if checksum is None:
                checksum = out
            elif out != checksum:
                raise RuntimeError(f"--sandbox {mode} printed {out!r}, expected {checksum!r}")
            log(f"{mode} run {r + 1}: {secs:.2f} s, {n} built")
    section = render(args, params, res, built, quiet, checksum)
    print(section)
    if not args.no_write:
        harness.write_section(RESULTS, section, SECTION)
        log(f"wrote {RESULTS.relative_to(REPO)}")
    shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
