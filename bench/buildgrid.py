"""A private BuildGrid 0.4.4 + PostgreSQL 15 on loopback for the benchmarks (the same recipe
as the tests' harness, `reapi/tests/support/buildgrid.rs`): started by `BuildGrid(dir)`,
stopped by `.stop()`. Needs what `scripts/install-deps` installs."""

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

VERSION = "0.4.4"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bgd_bin():
    venv = os.environ.get("CMOD_BUILDGRID_VENV")
    if not venv:
        data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local/share")
        venv = str(Path(data) / f"cmod-deps/buildgrid-{VERSION}")
    bgd = Path(venv) / "bin/bgd"
    if not bgd.is_file():
        raise SystemExit(f"BuildGrid {VERSION} is not installed ({bgd} is missing): run scripts/install-deps")
    return bgd


def postgres_bin():
    versions = sorted((int(p.name), p / "bin") for p in Path("/usr/lib/postgresql").glob("*") if p.name.isdigit() and (p / "bin/initdb").is_file())
    if not versions:
        raise SystemExit("PostgreSQL's initdb was not found: run scripts/install-deps")
    return versions[-1][1]


# The tests' harness and the benchmarks share one configuration template.
CONFIG_TEMPLATE = Path(__file__).resolve().parent.parent / "reapi/tests/support/buildgrid.yml"


def config_text(port, db, cas):
    """The configuration of a plain-gRPC server on `port`, unnamed instance, no auth."""
    values = {
        "{port}": str(port),
        "{db}": db,
        "{cas}": json.dumps(str(cas)),
        "{instance}": '""',
        "{max_refs}": "200000",
        "{channel}": "    insecure-mode: true\n",
        "{authorization}": "",
    }
    text = CONFIG_TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace(key, value)
    return text


class BuildGrid:
    def __init__(self, dir):
        self.dir = Path(dir).resolve()
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "pg/sock").mkdir(parents=True)
        os.chmod(self.dir, 0o755)
        self.bgd = bgd_bin()
        pg = postgres_bin()
        self.pg_ctl = pg / "pg_ctl"
        self.data = self.dir / "pg/data"
        self.user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self.user:
            for p in [self.dir / "pg", self.dir / "pg/sock"]:
                os.chown(p, self.user.pw_uid, self.user.pw_gid)
        self.as_pg([pg / "initdb", "-D", self.data, "-A", "trust", "-U", "bgd", "-E", "UTF8", "--no-locale", "-N"])
        pg_port = free_port()
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"\nlisten_addresses = '127.0.0.1'\nport = {pg_port}\nunix_socket_directories = '{self.dir / 'pg/sock'}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n")
        self.as_pg([self.pg_ctl, "-D", self.data, "-l", self.dir / "pg/postgres.log", "-w", "-t", "60", "start"])
        db = f"postgresql+psycopg2://bgd@127.0.0.1:{pg_port}/postgres"
        subprocess.run([self.bgd, "migrate", "apply", db], check=True, capture_output=True)
        port = free_port()
        (self.dir / "cas").mkdir()
        config = self.dir / "bgd.yml"
        config.write_text(config_text(port, db, self.dir / "cas"))
        self.url = f"grpc://127.0.0.1:{port}"
        log = open(self.dir / "bgd.log", "a")
        self.server = subprocess.Popen([self.bgd, "server", "start", config], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 90
        while True:
            p = subprocess.run([self.bgd, "capabilities", "--remote", f"http://127.0.0.1:{port}"], capture_output=True)
            if p.returncode == 0:
                break
            if self.server.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError(f"bgd server did not come up:\n{(self.dir / 'bgd.log').read_text()[-3000:]}")
            time.sleep(0.5)

    def as_pg(self, cmd):
        def demote():
            if self.user:
                os.setgid(self.user.pw_gid)
                os.setuid(self.user.pw_uid)
        subprocess.run([str(c) for c in cmd], check=True, capture_output=True, preexec_fn=demote, cwd=self.dir, env=dict(os.environ, HOME=str(self.dir / "pg")))

    def cas_bytes(self):
        return sum(p.stat().st_size for p in (self.dir / "cas").rglob("*") if p.is_file())

    def stop(self):
        if self.server and self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGTERM)
            try:
                self.server.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait()
        try:
            self.as_pg([self.pg_ctl, "-D", self.data, "-m", "immediate", "stop"])
        except subprocess.CalledProcessError:
            pass
