#!/usr/bin/env python3
"""Benchmark sharing (issue 5): `cmod copy` against `nix copy`, a no-op `cmod copy` over
ssh, and a fully substituted build against a cold build.

Measured side by side in one run, with the same bytes on both sides:

* `cmod copy --to file://` vs `nix copy --to file://` (Debian's nix 2.8, default xz) for
  a 200 MB, 2,000-file tree (one store path on each side), and for the closure of the
  generated ~200-TU project (every output of its build: the same files added to the Nix
  store path by path);
* a no-op `cmod copy --to ssh://` (a real sshd on loopback) of the closure of the
  project's link derivation plus every output (600+ paths), after a first full copy;
* `cmod realise` of the generated project: cold (empty store and caches) against fully
  substituted from a file:// cache (empty store and caches, `--substituters`).

Writes the section "Sharing benchmark (issue 5)" of bench/RESULTS.md (other sections
are kept). Usage: `cargo build --release && python3 bench/share.py [--runs 3]`.
"""

import argparse
import datetime
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import gen
import run as harness

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "work" / "share"
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## Sharing benchmark (issue 5)"
NIX = ["nix", "--extra-experimental-features", "nix-command"]


def log(msg):
    print(f"[share] {msg}", file=sys.stderr, flush=True)


def sh(cmd, env=None, cwd=None):
    """Run `cmd`, raising with its output on failure; return (seconds, stdout, stderr)."""
    start = time.perf_counter()
    p = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True)
    secs = time.perf_counter() - start
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return secs, p.stdout, p.stderr


def fresh(*dirs):
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def settle():
    """ext4 slows inode allocation down for ~30 s after many deletions (its
    `recently_deleted` scan): wait that out so no timed run pays for an earlier cleanup."""
    log("letting the file system settle after deletions (35 s)")
    subprocess.run(["sync"])
    time.sleep(35)


def seed_cache(store, warm):
    """A new store whose evaluator caches (toolchain description, scans) are `warm`'s."""
    (store / "v1").mkdir(parents=True)
    shutil.copytree(warm / "v1/cache", store / "v1/cache")


def page_in_toolchain(cmod, scratch, project):
    """Load the compiler, its libraries and headers into the page cache, untimed, by
    computing the toolchain identity in a scratch store. This VM pages out file data left
    idle for about a minute (DAMON), which would otherwise make the first realise after a
    pause a disk benchmark rather than a measure of an empty store."""
    def prepare():
        d = scratch / f"s{len(list(scratch.glob('s*')))}"
        sh([cmod, "--store", d, "toolchain"], env=cmod_env(scratch / "home"), cwd=project)
    scratch.mkdir(parents=True, exist_ok=True)
    return prepare


def cmod_env(home):
    env = dict(os.environ)
    env.update({
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CONFIG_HOME": str(home / "config"),
    })
    env.pop("CMOD_STORE", None)
    return env


def make_tree(root, files=2000, size=100_000, seed=5):
    """2,000 files of 100 kB (200 MB): half pseudo-random bytes, half text."""
    if (root / ".done").exists():
        return
    fresh(root)
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10))) for _ in range(5000)]
    pool = b" ".join(rng.choice(words) for _ in range(400_000))
    for i in range(files):
        d = root / f"d{i // 100:02d}"
        d.mkdir(parents=True, exist_ok=True)
        if i % 2:
            data = rng.randbytes(size)
        else:
            start = rng.randrange(0, len(pool) - size)
            data = pool[start:start + size]
        (d / f"f{i:04d}").write_bytes(data)
    (root / ".done").write_text("")


def tree_bytes(root):
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.name != ".done")


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt(s):
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def series(xs):
    return f"{fmt(median(xs))} ({', '.join(fmt(x) for x in xs)})"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    """A throwaway OpenSSH server on loopback, as in tests/servers."""

    def __init__(self, d):
        fresh(d)
        d.mkdir(parents=True)
        os.makedirs("/run/sshd", exist_ok=True)
        for k in ["host_key", "client_key"]:
            sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / k])
        shutil.copy(d / "client_key.pub", d / "authorized_keys")
        self.port = free_port()
        (d / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            f"StrictModes no\nUsePAM no\nPidFile {d}/sshd.pid\nLogLevel ERROR\n")
        (d / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {(d / 'host_key.pub').read_text()}")
        (d / "ssh_config").write_text(
            f"Host cmodbench\n  HostName 127.0.0.1\n  Port {self.port}\n  User {os.environ.get('USER', 'root')}\n"
            f"  IdentityFile {d}/client_key\n  IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n")
        self.opts = f"-F {d}/ssh_config"
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", d / "sshd_config"],
                                     stdout=subprocess.DEVNULL, stderr=open(d / "log", "w"))
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"sshd did not start: {(d / 'log').read_text()}")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cmod", default=os.environ.get("CMOD_BIN", str(REPO / "target/release/cmod")))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--quiet-wait", type=float, default=30)
    ap.add_argument("--no-write", action="store_true")
    gen.add_shape_args(ap)
    args = ap.parse_args(argv)
    cmod = Path(args.cmod).resolve()
    quiet = harness.Quiet(args.quiet_wait)
    WORK.mkdir(parents=True, exist_ok=True)
    # Every run below writes to directories of its own; everything from earlier
    # invocations is deleted here, before anything is timed.
    for d in WORK.iterdir():
        if d.name != "tree":
            fresh(d) if d.is_dir() else d.unlink()
    subprocess.run(["nix-store", "--gc"], capture_output=True)
    home = WORK / "home"
    env = cmod_env(home)
    res = {}

    # -------------------------------------------------- 200 MB, 2,000-file tree
    tree = WORK / "tree"
    log("generating the 200 MB tree")
    make_tree(tree)
    nbytes = tree_bytes(tree)
    store = WORK / "store-tree"
    fresh(store)
    _, out, _ = sh([cmod, "--store", store, "store", "add", tree, "--name", "tree"], env=env)
    cpath = out.strip()
    _, out, _ = sh(["nix-store", "--add", tree])
    npath = out.strip()
    res["tree"] = {"bytes": nbytes, "cmod": [], "nix": [], "cmod_size": 0, "nix_size": 0}
    settle()
    for i in range(args.runs):
        log(f"tree copy run {i + 1}")
        c, n = WORK / f"cache-tree-cmod-{i}", WORK / f"cache-tree-nix-{i}"
        (secs, _, _), _ = quiet.timed(sh, [cmod, "--store", store, "copy", "--to", f"file://{c}", cpath, "-j", args.jobs], env)
        res["tree"]["cmod"].append(secs)
        (secs, _, _), _ = quiet.timed(sh, NIX + ["copy", "--to", f"file://{n}", npath])
        res["tree"]["nix"].append(secs)
        res["tree"]["cmod_size"] = tree_bytes(c)
        res["tree"]["nix_size"] = tree_bytes(n)

    # -------------------------------------------------- the generated project
    params = gen.params_from(args)
    project = WORK / "proj"
    gen.generate(project, params, force=True)
    warm_up = page_in_toolchain(cmod, WORK / "scratch", project)
    key_sec, key_pub = WORK / "key.sec", WORK / "key.pub"
    fresh(key_sec, key_pub)
    for f in [key_sec, key_pub]:
        f.unlink(missing_ok=True)
    sh([cmod, "key", "generate", "bench-1", "--secret-key", key_sec, "--public-key", key_pub])
    pub = key_pub.read_text().strip()
    # The evaluator's caches of a store that has evaluated the project once (but holds
    # none of its outputs): the "warm" variants start from a copy of them.
    warm = WORK / "store-warm"
    sh([cmod, "--store", warm, "eval"], env=env, cwd=project)
    res["cold"], res["cold_warm"] = [], []
    built_store = None
    for i in range(2):
        for kind in ["cold", "cold_warm"]:
            log(f"{kind} build {i + 1}")
            s = WORK / f"store-{kind}{i}"
            if kind == "cold_warm":
                seed_cache(s, warm)
            (secs, out, _), _ = quiet.timed_after(warm_up, sh, [cmod, "--store", s, "realise", "-j", args.jobs, "--message-format", "json", "--no-link"], cmod_env(WORK / f"home-{kind}{i}"), project)
            fin = json.loads(out.strip().splitlines()[-1])
            assert fin["success"], fin
            res[kind].append(secs)
            res["derivations"] = fin["built"]
            if kind == "cold":
                built_store = s
    sh([cmod, "--store", built_store, "store", "sign", "--key-file", key_sec], env=env, cwd=project)
    settle()

    # closure copy: cmod vs nix, the same files
    res["closure"] = {"cmod": [], "nix": [], "paths": 0, "bytes": 0}
    for i in range(args.runs):
        log(f"closure copy run {i + 1}")
        c, n = WORK / f"cache-proj-cmod-{i}", WORK / f"cache-proj-nix-{i}"
        (secs, _, err), _ = quiet.timed(sh, [cmod, "--store", built_store, "copy", "--to", f"file://{c}", "-j", args.jobs], env, project)
        res["closure"]["cmod"].append(secs)
        m = re.search(r"Copied (\d+) of (\d+) path", err)
        res["closure"]["paths"] = int(m.group(2)) if m else 0
        if i == 0:
            infos = [json.loads(p.read_text()) for p in (c / "info").glob("*.json")]
            dirs = [built_store / "v1/store" / info["path"] for info in infos]
            res["closure"]["bytes"] = sum(info["size"] for info in infos)
            _, out, _ = sh(["nix-store", "--add"] + dirs)
            nix_paths = out.split()
        (secs, _, _), _ = quiet.timed(sh, NIX + ["copy", "--to", f"file://{n}"] + nix_paths)
        res["closure"]["nix"].append(secs)

    # no-op copy over ssh of 600+ paths: the link derivation's closure and every output
    sshd = Sshd(WORK / "sshd")
    try:
        remote = WORK / "store-remote"
        # Every valid path of the built store: outputs, derivations and sources.
        paths = [built_store / "v1/store" / json.loads(p.read_text())["path"] for p in (built_store / "v1/meta").glob("*.json")]
        url = f"ssh://cmodbench?remote-store={remote}&remote-program={cmod}"
        senv = dict(env, CMOD_SSHOPTS=sshd.opts)
        args_ssh = [cmod, "--store", built_store, "copy", "--to", url] + paths
        secs, _, err = sh(args_ssh, senv)
        res["ssh_first"] = secs
        m = re.search(r"Copied (\d+) of (\d+) path", err)
        res["ssh_paths"] = int(m.group(2))
        res["ssh_noop"] = []
        for i in range(args.runs):
            (secs, _, err), _ = quiet.timed(sh, args_ssh, senv)
            assert "Copied 0 of" in err, err
            res["ssh_noop"].append(secs)
    finally:
        sshd.stop()

    # fully substituted build
    settle()
    res["subst"], res["subst_warm"] = [], []
    for i in range(args.runs):
        for kind in ["subst", "subst_warm"]:
            log(f"{kind} build {i + 1}")
            s = WORK / f"store-{kind}{i}"
            if kind == "subst_warm":
                seed_cache(s, warm)
            (secs, out, _), _ = quiet.timed_after(warm_up, sh, [cmod, "--store", s, "realise", "-j", args.jobs, "--message-format", "json", "--no-link",
                                                  "--substituters", f"file://{WORK / 'cache-proj-cmod-0'}", "--trusted-public-keys", pub], cmod_env(WORK / f"home-{kind}{i}"), project)
            fin = json.loads(out.strip().splitlines()[-1])
            assert fin["success"] and fin["built"] == 0, fin
            res[kind].append(secs)
            res["substituted"] = fin["substituted"]

    (WORK / "results.json").write_text(json.dumps(res, indent=1))
    section = render(res, args, params, quiet, cmod)
    print(section)
    if not args.no_write:
        text = RESULTS.read_text()
        pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
        text = pattern.sub(lambda _: section.rstrip() + "\n\n", text, count=1) if pattern.search(text) else text.rstrip() + "\n\n" + section
        RESULTS.write_text(text.rstrip() + "\n")


def render(res, args, params, quiet, cmod):
    mb = 1e6
    t, c = res["tree"], res["closure"]
    tp = lambda b, xs: b / median(xs) / mb
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    nixv = subprocess.run(["nix", "--version"], capture_output=True, text=True).stdout.strip()
    load = Path("/proc/loadavg").read_text().split()[:3]
    cold, subst = median(res["cold"]), median(res["subst"])
    cold_w, subst_w = median(res["cold_warm"]), median(res["subst_warm"])
    return f"""{SECTION}

Measured {datetime.date.today()} at commit {commit} with:

    cargo build --release && python3 bench/share.py --runs {args.runs}

- Machine: {harness.machine()}; {nixv}; load average at the end {' '.join(load)}.
  Shared machine: {quiet.summary()}.
- Tree: 2,000 files of 100 kB ({t['bytes'] / mb:.0f} MB; half pseudo-random, half text), one store path on each side.
- Project: `bench/gen.py {gen.shape_flags(params)}` ({res['derivations']} derivations); its closure is every output of
  the build ({c['paths']} paths, {c['bytes'] / mb:.1f} MB), added path by path to the Nix store for `nix copy`.
- `cmod copy -j {args.jobs}` (tar + zstd level 3, multi-threaded); `nix copy` with its defaults (xz). Medians of {args.runs} runs.

| measurement | cmod | nix | cmod / nix throughput |
| --- | --- | --- | --- |
| 200 MB tree → file:// | {series(t['cmod'])}, {tp(t['bytes'], t['cmod']):.0f} MB/s, cache {t['cmod_size'] / mb:.0f} MB | {series(t['nix'])}, {tp(t['bytes'], t['nix']):.0f} MB/s, cache {t['nix_size'] / mb:.0f} MB | {median(t['nix']) / median(t['cmod']):.1f}× |
| project closure → file:// | {series(c['cmod'])}, {tp(c['bytes'], c['cmod']):.0f} MB/s | {series(c['nix'])}, {tp(c['bytes'], c['nix']):.0f} MB/s | {median(c['nix']) / median(c['cmod']):.1f}× |

| measurement | result | target |
| --- | --- | --- |
| no-op `cmod copy --to ssh://` of {res['ssh_paths']} paths (first copy: {fmt(res['ssh_first'])}) | {series(res['ssh_noop'])} | ≤ 1 s |
| cold `cmod realise -j {args.jobs}`, empty store and caches | {series(res['cold'])} | |
| fully substituted, empty store and caches ({res['substituted']} substituted, 0 built) | {series(res['subst'])} | |
| **cold / substituted, empty store and caches** | **{cold / subst:.1f}×** | ≥ 20× |
| cold `cmod realise -j {args.jobs}`, warm evaluator caches, no outputs | {series(res['cold_warm'])} | |
| fully substituted, warm evaluator caches, no outputs | {series(res['subst_warm'])} | |
| **cold / substituted, warm evaluator caches** | **{cold_w / subst_w:.1f}×** | ≥ 20× |

Commands (`B` = the cmod binary, `S` = a store): tree: `B --store S store add TREE`, then
`B --store S copy --to file://C PATH -j 2` against `nix-store --add TREE` and `nix copy --to file://N
PATH`; closure: `B --store S copy --to file://C -j 2` in the project (all targets: every output and
the signed build trace) against `nix copy --to file://N` of the same directories added with
`nix-store --add`; ssh: `CMOD_SSHOPTS="-F ssh_config" B --store S copy --to 'ssh://host?remote-store=R&remote-program=B' PATH...`
(every valid path of the built store) twice, the second timed; substituted: `B --store EMPTY realise -j 2
--substituters file://C --trusted-public-keys KEY`, after `B store sign --key-file K` in the built store.
"Empty store and caches" pays for the toolchain identity (hashing the compiler's closure,
436 MB in about 10,000 files, ~0.2 s here) on both sides; the cold build also scans every unit
(overlapped with the identity), while the substituted one takes the signed scan entries
`store sign` and `copy --to` published with the build (see docs/SHARING.md, "Scan entries");
"warm evaluator caches" starts both from a store
that has evaluated the project before (its `v1/cache` copied) but holds none of its
outputs, as on a developer machine or a CI runner with a persistent store. Every run
writes to directories of its own and nothing is deleted during the timed part (ext4
allocates inodes slowly for ~30 s after mass deletions, which otherwise inflated runs
2–3×); the script waits 35 s after its initial cleanup. Before each timed realise (cold
and substituted alike) an untimed `B --store SCRATCH toolchain` loads the compiler, its
libraries and headers into the page cache: this VM pages out file data left idle for about
a minute (DAMON `pageout`), which otherwise made the first realise after a pause 2–3×
slower by reading them from disk.
"""


if __name__ == "__main__":
    main()
