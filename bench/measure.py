"""Running one benchmark command and measuring it (bench/scale.py, bench/edit_probe.py).

`measure` runs a command and returns an `Outcome`: its wall and CPU time, its stdout lines
with their arrival times, and on request its own peak RSS (`RssSampler`, from `/proc`)
and the time to the exec of its first compile (`ExecWatcher`, from the kernel's process
events; root only).
"""

import dataclasses
import os
import shlex
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import run as harness

RSS_EVERY = 0.005  # seconds between samples of cmod's VmHWM


@dataclasses.dataclass
class Outcome:
    """One measured command."""

    seconds: float  # wall time from just before the spawn to the reaping
    cpu: float  # user+sys of the process and every descendant it waited for
    rss_kib: int | None  # the process's own peak resident set, when sampled
    first_compile: float | None  # seconds to the exec of the first compile, when watched
    lines: list  # (seconds from the start at which the line arrived, text) per stdout line


class RssSampler(threading.Thread):
    """Samples one process's own peak resident set: VmHWM of /proc/PID/status, which only grows.

    Its children are separate processes and not counted. Only growth in the last
    RSS_EVERY seconds before the process exits can be missed.
    """

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.status = Path(f"/proc/{pid}/status")
        self.peak_kib = 0
        self.done = threading.Event()
        self.start()

    def run(self):
        """Sample until `stop`."""
        while True:
            self.sample()
            if self.done.wait(RSS_EVERY):
                return

    def sample(self):
        """Read VmHWM once (absent once the process has exited)."""
        try:
            text = self.status.read_text()
        except OSError:
            return
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                self.peak_kib = max(self.peak_kib, int(line.split()[1]))

    def stop(self):
        """Stop sampling; return the peak in KiB."""
        self.done.set()
        self.join()
        return self.peak_kib


class ExecWatcher(threading.Thread):
    """Records fork and exec events of the whole machine from the kernel's proc connector.

    A netlink socket (needs CAP_NET_ADMIN): the kernel stamps every event with
    CLOCK_MONOTONIC, the clock of time.monotonic_ns(). Each exec's command line is read
    from /proc on arrival. `first_compile` picks the events of one process tree afterwards.
    """

    FORK, EXEC = 1, 2  # PROC_EVENT_FORK, PROC_EVENT_EXEC
    LISTEN, IGNORE = 1, 2  # PROC_CN_MCAST_LISTEN, PROC_CN_MCAST_IGNORE
    CN_IDX_PROC = 1
    DATA = 36  # sizeof(struct nlmsghdr) + sizeof(struct cn_msg)

    unavailable = None  # why the connector could not be opened, once it failed

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock = sock
        self.events = []  # (what, kernel ns, parent or exec'ing tgid, child tgid, argv)
        self.lost = False
        self.done = threading.Event()
        self.start()

    @classmethod
    def open(cls):
        """A running watcher, or None where the proc connector is unavailable."""
        if cls.unavailable:
            return None
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 11)  # NETLINK_CONNECTOR
            sock.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE: a busy machine forks a lot
            sock.bind((0, cls.CN_IDX_PROC))
            sock.send(cls.control(cls.LISTEN))
        except OSError as err:
            cls.unavailable = str(err)
            harness.log(f"no kernel process events ({err}): first-compile exec times not measured")
            return None
        sock.settimeout(0.05)
        return cls(sock)

    @classmethod
    def control(cls, op):
        """A netlink message subscribing to (LISTEN) or leaving (IGNORE) the proc connector."""
        payload = struct.pack("I", op)
        cn_msg = struct.pack("IIIIHH", cls.CN_IDX_PROC, 1, 0, 0, len(payload), 0) + payload
        return struct.pack("IHHII", 16 + len(cn_msg), 3, 0, 0, 0) + cn_msg  # NLMSG_DONE

    def run(self):
        """Receive until `stop`, then drain what is queued."""
        while True:
            try:
                self.record(self.sock.recv(4096))
            except TimeoutError:
                if self.done.is_set():
                    return
            except OSError:  # ENOBUFS: the kernel dropped events
                self.lost = True

    def record(self, data):
        """Keep fork and exec events, reading an exec's command line while the process lives."""
        what, _cpu, ns = struct.unpack_from("IIQ", data, self.DATA)
        if what == self.FORK:
            _, parent, _, child = struct.unpack_from("IIII", data, self.DATA + 16)
            self.events.append((what, ns, parent, child, None))
        elif what == self.EXEC:
            _, tgid = struct.unpack_from("II", data, self.DATA + 16)
            try:
                argv = Path(f"/proc/{tgid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                argv = None
            self.events.append((what, ns, tgid, None, argv))

    def stop(self):
        """Stop receiving and leave the connector."""
        self.done.set()
        self.join()
        try:
            self.sock.send(self.control(self.IGNORE))
        finally:
            self.sock.close()

    def first_compile(self, root, start_ns):
        """Seconds from `start_ns` to the exec of the first compile (see is_compile) under process `root`.

        None if there was none, or if events were lost. A process's command line is read
        after its exec is reported, possibly after a later exec (`sh -c` exec'ing clang),
        so each process counts with its last exec that read as a compile.
        """
        if self.lost:
            return None
        family, compiles = {root}, {}
        for what, ns, tgid, child, argv in self.events:
            if what == self.FORK and tgid in family:
                family.add(child)
            elif what == self.EXEC and tgid in family and is_compile(argv):
                compiles[tgid] = ns
        return (min(compiles.values()) - start_ns) / 1e9 if compiles else None


def is_compile(argv):
    """True for a clang compile command line (`-c`, or `--precompile` for a BMI), not a scan, link or archive."""
    return (bool(argv) and Path(argv[0]).name.startswith("clang") and "scan-deps" not in argv[0]
            and ("-c" in argv or "--precompile" in argv))


def read_lines(fd, start, lines):
    """Read `fd` to its end, appending (arrival seconds since `start`, text) per complete line."""
    pending = b""
    while chunk := os.read(fd, 1 << 16):
        now = time.perf_counter() - start
        *complete, pending = (pending + chunk).split(b"\n")
        lines.extend((now, line.decode()) for line in complete)


def measure(cmd, cwd, env=None, rss=False, execs=False):
    """Run `cmd`, timestamping its stdout lines; with `rss`, sample its own peak RSS; with
    `execs`, watch its process tree for the first compile.

    wait4's ru_maxrss is no measure of cmod's own peak: it includes reaped children, and
    the pre-exec image, a fork of this Python process.

    Returns an Outcome; a non-zero exit raises with the end of stderr.
    """
    lines = []
    watcher = ExecWatcher.open() if execs else None
    with tempfile.TemporaryFile() as err:
        start_ns, start = time.monotonic_ns(), time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err)
        reader = threading.Thread(target=read_lines, args=(proc.stdout.fileno(), start, lines))
        reader.start()
        sampler = RssSampler(proc.pid) if rss else None
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        rss_kib = sampler.stop() if sampler else None
        reader.join()
        proc.stdout.close()
        if watcher:
            watcher.stop()
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{shlex.join(map(str, cmd))} (in {cwd}) exited {proc.returncode}\n"
                               f"{err.read().decode(errors='replace')[-3000:]}")
    first = watcher.first_compile(proc.pid, start_ns) if watcher else None
    return Outcome(seconds, usage.ru_utime + usage.ru_stime, rss_kib, first, lines)
