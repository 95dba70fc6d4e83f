#!/usr/bin/env python3
"""Edit → first compile on an already built project, for comparing cmod binaries (A/B).

    python3 bench/edit_probe.py SIZE_DIR STORE [--runs N] [--start V] [--cmod PATH]

SIZE_DIR is one size directory that bench/scale.py left (e.g. bench/work/scale/m600, the
3,001-unit chain), holding `proj-cmod/`; STORE is a store it was realised into (e.g.
`$SIZE_DIR/cmod-store-fill`). Each run edits the marked implementation unit
(`gen.py --edit-impl`, value V, V+1, ...) and times `cmod realise -j2 --store STORE
--message-format json` with scale.py's `measure`: the wall time, and the time from the
command's start to the exec of its first compile (kernel process events; needs root).
One untimed run comes first, so caches keyed by the binary (the emission record) are
this binary's. Use a different `--start` for each binary: an edit value another binary
already built is fresh, and compiles nothing.

With `--interface K`, each edit is of module K's primary interface instead (a comment
whose length varies, `gen.edit_interface`): its BMI and every importer downstream are
rebuilt, a realisation far larger than an implementation-unit edit's. The interface is
restored at the end.

With `--no-recipes`, the speculative builds' recipes (`STORE/v1/cache/ahead-v1`) are
removed before each edit: every edit is then timed as the first edit of its file after a
large build (docs/ARCHITECTURE.md, "Speculative builds"), where nothing is built ahead.

With `--first-edit`, each edit is timed as the first edit of its file after a cold build
(or a checkout): before it, the recent recipes (`ahead-v1/<request>/*.head` and their
bodies) and the steps' kept views (`STORE/v1/views`) are removed, and only what a cold
build leaves stays: the unit recipes, the stamp index and the module table, from which
the edited unit is built ahead. The store must have been filled by a binary that records
unit recipes (a cold build), or the edit finds no recipe.

This is no side-by-side benchmark (scale.py is: it measures Ninja in the same run and
writes RESULTS.md); it compares two cmod builds on the same store, with the noise of
one machine, so run each binary's block more than once, interleaved.
"""

import argparse
import os
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen  # noqa: E402
import run as harness  # noqa: E402
import scale  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("size_dir", type=Path)
    ap.add_argument("store", type=Path)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--start", type=int, default=7000, help="first edit value")
    ap.add_argument("--no-recipes", action="store_true", help="remove the speculative builds' recipes before each edit")
    ap.add_argument("--first-edit", action="store_true", help="remove the recent recipes and kept views before each edit (keep the unit recipes)")
    ap.add_argument("--interface", type=int, metavar="K", help="edit module K's primary interface, not the implementation unit")
    ap.add_argument("--cmod", default=os.environ.get("CMOD_BIN", str(harness.REPO / "target" / "release" / "cmod")))
    args = ap.parse_args()
    proj = args.size_dir / "proj-cmod"
    env = harness.cmod_env(args.size_dir / "cmod-home-probe")
    cmd = [args.cmod, "realise", "-j2", "--store", str(args.store), "--message-format", "json"]
    def edit(value):
        if args.interface is None:
            gen.edit_impl(proj, value)
        else:
            gen.edit_interface(proj, args.interface, value)

    edit(args.start + 10_000)
    scale.measure(cmd, proj, env=env)
    firsts, walls, steps = [], [], []
    try:
        for i in range(args.runs):
            if args.no_recipes:
                shutil.rmtree(args.store / "v1" / "cache" / "ahead-v1", ignore_errors=True)
            if args.first_edit:
                forget_recent_recipes(args.store)
            edit(args.start + i)
            out = scale.measure(cmd, proj, env=env, execs=True)
            if out.first_compile is None:
                sys.exit(f"run {i}: no compile was seen (edit value {args.start + i} already built?)")
            firsts.append(out.first_compile * 1000)
            walls.append(out.seconds * 1000)
            built = [m for _, m in scale.cmod_messages(out) if m.get("reason") == "built"]
            steps.append(f"{len(built)}/{sum(1 for m in built if m.get('speculative'))}")
    finally:
        if args.interface is not None:
            gen.edit_interface(proj, args.interface, None)
    show = lambda xs: " ".join(f"{x:.1f}" for x in xs) + f"  median {statistics.median(xs):.1f}"
    print(f"{args.cmod}: edit -> first compile's exec, ms: {show(firsts)}")
    print(f"{args.cmod}: whole edit, ms: {show(walls)}")
    print(f"{args.cmod}: steps built / built ahead: {' '.join(steps)}")


def forget_recent_recipes(store):
    """Remove what only an edit leaves behind: the recent recipes (with their closures)
    and every step's kept view; a cold build leaves neither."""
    for request in (store / "v1" / "cache" / "ahead-v1").glob("*"):
        for f in request.iterdir():
            if f.suffix in (".head", ".json") and f.name not in ("units.json", "modules.json"):
                f.unlink()
    shutil.rmtree(store / "v1" / "views", ignore_errors=True)
    # A cold build ends long before the first edit: its writes are on disk by then.
    os.sync()


if __name__ == "__main__":
    main()
