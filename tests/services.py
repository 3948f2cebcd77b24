"""Throwaway services the scale-out tests need, each started on 127.0.0.1 and stopped after, with timeouts so a hung
service never hangs the suite: a PostgreSQL cluster (initdb into a temp dir, unix socket there too), a Redis server
and a moto S3 server. Imported by path (tests/ is not a package); benchmarks use it too.

PostgreSQL refuses to run as root: as root the cluster runs as the `postgres` user (Debian's package creates it), or
`nobody` when there is none; its directory is chowned to that user. Authentication is `trust`, on loopback only.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from glob import glob
from pathlib import Path

START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the service exited with {proc.returncode} before it listened on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f}s")


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


# --- PostgreSQL ------------------------------------------------------------------------------------------------------


def postgres_bin_dir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres (on PATH, or Debian's /usr/lib/postgresql/<v>/bin)."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += [Path(p) for p in sorted(glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for d in candidates:
        if all((d / exe).exists() for exe in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


def _unprivileged_user() -> pwd.struct_passwd | None:
    """Who runs the cluster when we are root (PostgreSQL refuses root); None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL")


@dataclass
class Postgres:
    """A running throwaway cluster: superuser `postgres`, trust authentication on 127.0.0.1:`port`."""

    port: int
    root: Path

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{db}"

    def execute(self, *statements: str) -> None:
        """Run statements as the superuser, outside a transaction (CREATE DATABASE, ALTER DATABASE ...)."""
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                               connect_timeout=10)  # fmt: skip
        try:
            con.autocommit = True
            with con.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            con.close()

    def create_database(self, name: str, *settings: str) -> str:
        """A fresh database (dropped first if it exists) with `settings` ("synchronous_commit = off"); its URL."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"',
                     *(f'ALTER DATABASE "{name}" SET {s}' for s in settings))  # fmt: skip
        return self.url(name)


@contextlib.contextmanager
def postgres_server(fsync: bool = False, timeout: float = START_TIMEOUT) -> Iterator[Postgres]:
    """initdb into a temp dir, start on a free loopback port, yield, stop (immediate) and delete the dir.
    `fsync=False` (tests) trades crash safety for speed; benchmarks pass True to measure what a deployment runs."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL binaries (initdb, pg_ctl, postgres) not found")
    user = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="qlake-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if user is not None:
        for p in (root, sock):
            os.chown(p, user.pw_uid, user.pw_gid)
    as_user: dict[str, object] = {}
    if user is not None:
        as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           "HOME": str(root)}  # fmt: skip

    def run(*args: str, t: float = timeout) -> None:
        done = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=t, **as_user)  # type: ignore[call-overload]
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr[-2000:]}")

    port = free_port()
    started = False
    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
            "--no-instructions")  # fmt: skip
        opts = f"-h 127.0.0.1 -p {port} -k {sock} -c max_connections=60 -c shared_buffers=32MB"
        if not fsync:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", opts, "-w", "-t",
            str(int(timeout)), "start", t=timeout + 5)  # fmt: skip
        started = True
        _wait_for_port(port, timeout)
        yield Postgres(port=port, root=root)
    finally:
        if started:
            try:
                run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "-t", "10", "stop", t=15)
            except (RuntimeError, subprocess.TimeoutExpired):
                pid_file = data / "postmaster.pid"
                with contextlib.suppress(OSError, ValueError, IndexError):
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


# --- Redis -----------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server(timeout: float = START_TIMEOUT) -> Iterator[str]:
    """redis-server on a free loopback port, no persistence; yields its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise FileNotFoundError("redis-server not found")
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="qlake-redis-"))
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_for_port(port, timeout, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


# --- S3 (moto in server mode) ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def s3_server(timeout: float = START_TIMEOUT) -> Iterator[str]:
    """moto's S3 server on a free loopback port; yields its endpoint URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_for_port(port, timeout, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)
