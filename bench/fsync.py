#!/usr/bin/env python3
"""What durability costs: cold `cmod realise` of the generated 201-TU project, and a
substitution of all of it from a `file://` cache into an empty store, with contents and
metadata flushed to stable storage before each path becomes valid (the default) and
without (`CMOD_FSYNC=0`, for throwaway stores). Medians of `--runs` runs each, written
into bench/RESULTS.md under "Durability (issue 11)".
"""

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys

import gen
import run as bench

WORK = bench.WORK / "fsync"
SECTION = "## Durability (issue 11)"


def timed_realise(cmod, project, store, env, extra=()):
    """One `cmod realise` in an empty `store`; (seconds, CPU seconds)."""
    if store.exists():
        shutil.rmtree(store)
    for link in project.glob("result*"):
        link.unlink()
    cmd = [cmod, "--store", store, "realise", "-j", "2", *extra]
    (secs, _), cpu = QUIET.timed(lambda: bench.run(cmd, project, env=env))
    return secs, cpu


QUIET = None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cmod", default=str(bench.REPO / "target" / "release" / "cmod"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    global QUIET
    QUIET = bench.Quiet(120)
    params = gen.Params(modules=40, partitions=2, fan_in=3, impls=1, plain=0, seed=1, work=10)
    project = WORK / "proj"
    gen.generate(project, params, force=True)
    base = dict(os.environ)
    modes = {"fsync (default)": {**base}, "CMOD_FSYNC=0": {**base, "CMOD_FSYNC": "0"}}
    # A signed cache of the whole build, for the substitution rows.
    seed = WORK / "seed-store"
    cache = WORK / "cache"
    for d in (seed, cache, WORK / "keys"):
        if d.exists():
            shutil.rmtree(d)
    keys = WORK / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    sk, pk = keys / "k.sec", keys / "k.pub"
    bench.run([args.cmod, "key", "generate", "bench-1", "--secret-key", sk, "--public-key", pk], project)
    bench.run([args.cmod, "--store", seed, "realise", "-j", "2"], project)
    bench.run([args.cmod, "--store", seed, "store", "sign", "--key-file", sk, "-r"], project)
    bench.run([args.cmod, "--store", seed, "copy", "--to", f"file://{cache}"], project)
    public = pk.read_text().strip()
    subst = ["--substituters", f"file://{cache}", "--trusted-public-keys", public]
    rows = []
    for label, env in modes.items():
        cold = [timed_realise(args.cmod, project, WORK / "store", env) for _ in range(args.runs)]
        sub = [timed_realise(args.cmod, project, WORK / "store", env, subst) for _ in range(args.runs)]
        bench.log(f"{label}: cold {[round(c[0], 2) for c in cold]}, substituted {[round(s[0], 2) for s in sub]}")
        rows.append((label, cold, sub))
    section = render(rows, args, params)
    print(section)
    if not args.no_write:
        bench.write_section(bench.RESULTS, section, SECTION)
    return 0


def render(rows, args, params):
    commit = subprocess.run(["git", "-C", str(bench.REPO), "rev-parse", "--short", "HEAD"],
                            stdout=subprocess.PIPE, text=True).stdout.strip() or "?"
    fmt = lambda xs: f"{bench.median([x[0] for x in xs]):.2f} s ({', '.join(f'{x[0]:.2f}' for x in xs)}); CPU {bench.median([x[1] for x in xs]):.2f} s"
    lines = [SECTION, "", f"Measured {datetime.date.today()} at commit {commit} with:", "",
             f"    python3 bench/fsync.py --runs {args.runs}", "",
             f"- Machine: {platform.platform()}; ext4; {bench.first_line(['clang++-19', '--version'])}.",
             f"- Project: the build benchmark's ({params.tu_count()} TUs), `-j2`, empty store each run "
             "(toolchain identification and scanning included). *Substituted*: every output, .drv and "
             "source fetched from a signed `file://` cache of the same build (about 770 registrations).",
             f"- Shared machine: {QUIET.summary()}.", "",
             "| mode | cold build | substituted |", "| --- | --- | --- |"]
    for label, cold, sub in rows:
        lines.append(f"| {label} | {fmt(cold)} | {fmt(sub)} |")
    (_, c_on, s_on), (_, c_off, s_off) = rows
    med = lambda xs: bench.median([x[0] for x in xs])
    lines += ["", f"- Flushing costs {med(c_on) / med(c_off):.2f}× on a cold build and "
              f"{med(s_on) / med(s_off):.2f}× on a substitution (per registration: the contents and "
              "their directory entry, then the metadata file and its directory)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
