#!/usr/bin/env python3
"""Benchmark the REAPI remote cache and remote execution (issue 13): the generated ~200-TU
project realised

* cold, locally, no remote cache (empty store, warm evaluator caches);
* cold with `--remote-cache` on an empty BuildGrid and a signing key: every step misses,
  is built here and published (the cost of asking and sharing);
* fully cached from the REAPI cache (empty store, warm evaluator caches, `--remote-cache`,
  the publisher's key trusted: 0 built);
* fully cached from a file:// binary cache holding the same outputs (`cmod copy --to`);
* cold with `--remote-executor` on two fresh `cmod worker`s (this machine's two cores): every
  step uploaded, executed by a worker and downloaded (the protocol's cost per action), with
  workers keeping nothing between actions (`--keep-store-mib 0`) and keeping the store paths
  actions ship (the default).

BuildGrid 0.4.4 with PostgreSQL 15 runs on loopback (bench/buildgrid.py). Writes the
section "Remote cache and execution benchmark (issue 13)" of bench/RESULTS.md (other sections are kept).
Usage: `cargo build --release && python3 bench/remote.py [--runs 3]`.
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import time
import sys
from pathlib import Path

import gen
import run as harness
from buildgrid import BuildGrid
from share import cmod_env, fresh, median, page_in_toolchain, seed_cache, series, settle, sh

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "work" / "remote"
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## Remote cache and execution benchmark (issue 13)"
# Steps in flight with remote execution (`-j`): the client's cores are not the limit.
REMOTE_JOBS = 8


def log(msg):
    print(f"[remote] {msg}", file=sys.stderr, flush=True)


def realise(quiet, warm_up, cmod, store, project, home, extra, env_extra=None, jobs=2):
    """One timed `realise -j JOBS` into `store`; (seconds, the final JSON message)."""
    env = cmod_env(home)
    env.update(env_extra or {})
    cmd = [cmod, "--store", store, "realise", "-j", str(jobs), "--message-format", "json", "--no-link"] + extra
    (secs, out, _), _ = quiet.timed_after(warm_up, sh, cmd, env, project)
    fin = json.loads(out.strip().splitlines()[-1])
    assert fin["success"], fin
    return secs, fin


def remote_run(quiet, warm_up, cmod, grid, project, warm, name, keep):
    """One cold build on two fresh `cmod worker`s (each with `keep` flags): its time, its
    final message, and (shipped, kept, busy) summed over the workers' logs: input store paths
    shipped, those already kept, and seconds spent serving leases."""
    logs = [WORK / f"worker-{name}-{w}.log" for w in range(2)]
    workers = [subprocess.Popen([cmod, "worker", "--server", grid.url, "--id", f"bench-{name}-{w}",
                                 "--work-dir", WORK / f"worker-{name}-{w}"] + keep,
                                stdout=subprocess.DEVNULL, stderr=open(logs[w], "w")) for w in range(2)]
    try:
        for log_file in logs:
            deadline = time.monotonic() + 60
            while "serving" not in log_file.read_text():
                assert time.monotonic() < deadline, log_file.read_text()
                time.sleep(0.1)
        s = WORK / f"store-{name}"
        seed_cache(s, warm)
        # -j counts steps in flight: with remote execution they wait on the network.
        secs, fin = realise(quiet, warm_up, cmod, s, project, WORK / f"home-{name}", ["--remote-executor", grid.url], jobs=REMOTE_JOBS)
    finally:
        for w in workers:
            w.kill()
            w.wait()
    shipped = kept = 0
    busy = 0.0
    for log_file in logs:
        text = log_file.read_text()
        for m in re.finditer(r"\((\d+) of (\d+) input paths kept\)", text):
            kept += int(m.group(1))
            shipped += int(m.group(2))
        busy += sum(float(m.group(1)) for m in re.finditer(r" in ([0-9.]+)s \(", text))
    return secs, fin, (shipped, kept, busy)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cmod", default=os.environ.get("CMOD_BIN", str(REPO / "target/release/cmod")))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quiet-wait", type=float, default=30)
    ap.add_argument("--no-write", action="store_true")
    gen.add_shape_args(ap)
    args = ap.parse_args(argv)
    cmod = Path(args.cmod).resolve()
    quiet = harness.Quiet(args.quiet_wait)
    fresh(WORK)
    WORK.mkdir(parents=True)
    params = gen.params_from(args)
    project = WORK / "proj"
    gen.generate(project, params, force=True)
    warm_up = page_in_toolchain(cmod, WORK / "scratch", project)
    key_sec, key_pub = WORK / "key.sec", WORK / "key.pub"
    sh([cmod, "key", "generate", "bench-remote-1", "--secret-key", key_sec, "--public-key", key_pub])
    pub = key_pub.read_text().strip()
    signing = WORK / "signing.toml"
    signing.write_text(f'[cache]\nsecret-key-files = ["{key_sec}"]\n')
    warm = WORK / "store-warm"
    sh([cmod, "--store", warm, "eval"], env=cmod_env(WORK / "home"), cwd=project)
    grid = BuildGrid(WORK / "buildgrid")
    res = {k: [] for k in ["cold", "publish", "reapi", "file", "remote", "remote_nokeep", "kept", "kept_nokeep"]}
    try:
        settle()
        for i in range(args.runs):
            # Each publishing run fills its own, empty server.
            if i > 0:
                grid.stop()
                grid = BuildGrid(WORK / f"buildgrid{i}")
            for kind in ["cold", "publish"]:
                log(f"{kind} build {i + 1}")
                s = WORK / f"store-{kind}{i}"
                seed_cache(s, warm)
                extra = ["--remote-cache", grid.url] if kind == "publish" else []
                env = {"CMOD_CONFIG": str(signing)} if kind == "publish" else {}
                secs, fin = realise(quiet, warm_up, cmod, s, project, WORK / f"home-{kind}{i}", extra, env)
                res[kind].append(secs)
                res["derivations"] = fin["built"]
        res["cas_bytes"] = grid.cas_bytes()
        built = WORK / f"store-publish{args.runs - 1}"
        cache = WORK / "cache-file"
        sh([cmod, "--store", built, "copy", "--to", f"file://{cache}", "-j", "2"], env=cmod_env(WORK / "home"), cwd=project)
        settle()
        for i in range(args.runs):
            for kind in ["reapi", "file"]:
                log(f"{kind} substituted build {i + 1}")
                s = WORK / f"store-{kind}{i}"
                seed_cache(s, warm)
                source = ["--remote-cache", grid.url] if kind == "reapi" else ["--substituters", f"file://{cache}"]
                secs, fin = realise(quiet, warm_up, cmod, s, project, WORK / f"home-{kind}{i}", source + ["--trusted-public-keys", pub])
                assert fin["built"] == 0 and fin["substituted"] == res["derivations"], fin
                res[kind].append(secs)
        for i in range(args.runs):
            # Workers keeping nothing between actions (as before they kept their store), then
            # as shipped; fresh workers for every run, so no run finds another's paths kept.
            for kind, keep in [("remote_nokeep", ["--keep-store-mib", "0"]), ("remote", [])]:
                log(f"remote build {i + 1} ({kind})")
                secs, fin, kept = remote_run(quiet, warm_up, cmod, grid, project, warm, f"{kind}{i}", keep)
                assert fin["built"] == res["derivations"], fin
                res[kind].append(secs)
                res["kept" if kind == "remote" else "kept_nokeep"].append(kept)
    finally:
        grid.stop()
    (WORK / "results.json").write_text(json.dumps(res, indent=1))
    section = render(res, args, params, quiet)
    print(section)
    if not args.no_write:
        text = RESULTS.read_text()
        pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
        text = pattern.sub(lambda _: section.rstrip() + "\n\n", text, count=1) if pattern.search(text) else text.rstrip() + "\n\n" + section
        RESULTS.write_text(text.rstrip() + "\n")


def render(res, args, params, quiet):
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    load = Path("/proc/loadavg").read_text().split()[:3]
    cold, publish, reapi, file, remote, nokeep = (median(res[k]) for k in ["cold", "publish", "reapi", "file", "remote", "remote_nokeep"])
    n = res["derivations"]
    shipped = sum(k[0] for k in res["kept"])
    kept = sum(k[1] for k in res["kept"])
    # Worker-side time per action (materialising, building, uploading), and the share of
    # the run the workers spent serving leases rather than waiting for one.
    per_action = sum(k[2] for k in res["kept"]) / (n * len(res["kept"]))
    per_action_nokeep = sum(k[2] for k in res["kept_nokeep"]) / (n * len(res["kept_nokeep"]))
    busy_share = sum(k[2] for k in res["kept"]) / (2 * sum(res["remote"]))
    return f"""{SECTION}

Measured {datetime.date.today()} at commit {commit} with:

    cargo build --release && python3 bench/remote.py --runs {args.runs}

- Machine: {harness.machine()}; load average at the end {' '.join(load)}. Shared machine: {quiet.summary()}.
- Project: `bench/gen.py {gen.shape_flags(params)}` ({n} derivations), `realise -j 2`, medians of {args.runs} runs.
- Server: BuildGrid 0.4.4 (CAS on disk, in-memory action cache) with PostgreSQL 15, on loopback.
  The CAS held {res['cas_bytes'] / 1e6:.0f} MB after a publishing run.

| measurement | time | ratio |
| --- | --- | --- |
| cold, local, no remote cache | {series(res['cold'])} | 1 |
| cold with `--remote-cache` (every step misses, is built here, signed and published) | {series(res['publish'])} | {publish / cold:.2f}× cold |
| fully cached from the REAPI cache ({n} steps fetched, 0 built) | {series(res['reapi'])} | **{cold / reapi:.1f}× faster than cold** |
| fully cached from a file:// binary cache (same outputs) | {series(res['file'])} | {cold / file:.1f}× faster than cold |
| REAPI cache / file:// cache | | {reapi / file:.2f}× |
| cold with `--remote-executor` on 2 `cmod worker --keep-store-mib 0`s (every action's whole input root fetched) on this machine, `-j {REMOTE_JOBS}` | {series(res['remote_nokeep'])} | {nokeep / cold:.2f}× cold |
| cold with `--remote-executor` on 2 `cmod worker`s (keeping shipped store paths, the default), `-j {REMOTE_JOBS}` | {series(res['remote'])} | {remote / cold:.2f}× cold |
| workers keeping / keeping nothing | | {remote / nokeep:.2f}× |

With the two workers kept busy (`-j {REMOTE_JOBS}` steps in flight), a remote action costs a worker {remote * 2 / n * 1000:.0f} ms
({remote:.2f} s × 2 workers / {n} steps) against {cold * 2 / n * 1000:.0f} ms for the same step built locally
({cold:.2f} s × 2 cores / {n}): the difference, {(remote - cold) * 2 / n * 1000:.0f} ms, is what an action costs a worker beyond
compiling. The workers' own logs split it: a worker spends {per_action * 1000:.0f} ms serving one action (materialising its
input root, building in the sandbox, uploading the outputs; {per_action_nokeep * 1000:.0f} ms when it keeps nothing between
actions), and was serving leases {busy_share * 100:.0f}% of the run: the rest is waiting for the next lease, i.e. queueing and
leasing through BuildGrid and PostgreSQL, which more steps in flight or faster server polling would hide. With N workers of this
machine's speed and a graph wide enough to keep them busy, a cold build takes about {remote * 2:.0f} s / N here
(and the local build {cold:.2f} s on 2 cores): remote execution pays off from N ≈ {remote / cold * 2:.0f} workers on this
project. Each worker keeps the store paths actions ship and fetches only those it lacks: over the
measured runs, {kept} of the {shipped} input store paths the actions shipped were already kept on the worker that
took them ({kept / max(shipped, 1) * 100:.0f}%); with `--keep-store-mib 0` every action fetches its whole input root.

A fetched build takes {reapi / n * 1000:.1f} ms of wall time per step ({n} steps; with a remote cache 8 workers
ask it at once while builders stay at `-j 2`); a step fetches its result only once its inputs are in the store
(its Action digest hashes their contents), so the graph's depth bounds the overlap, where a file:// binary cache
is asked one level of the graph at a time in batches. BuildGrid runs on the same two cores, and its CPU time counts
as "other processes" in the shared-machine line. Every run starts from an empty store seeded with the evaluator's caches
(a store that evaluated the project once, `v1/cache` copied), so the rows compare building with fetching, not
evaluation. Commands (`B` = the cmod binary): cold `B --store S realise -j 2`; publishing: the same with
`--remote-cache grpc://127.0.0.1:PORT` and `secret-key-files` in `CMOD_CONFIG`; REAPI cached: `--remote-cache …
--trusted-public-keys KEY`; file://: `B copy --to file://C` from the publishing store, then `--substituters
file://C --trusted-public-keys KEY`.
"""


if __name__ == "__main__":
    main()
