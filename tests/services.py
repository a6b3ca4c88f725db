"""Real Redis and PostgreSQL servers for the tests, on free loopback ports.

Both are started from their binaries (Debian's ``redis-server``; PostgreSQL's
``initdb``/``pg_ctl`` from ``pg_config --bindir`` or ``/usr/lib/postgresql/*/bin``).
``.ci/run`` installs them. When one is missing, :func:`missing` fails the test with
the reason under CI (``CI=true``) and skips it elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def missing(what: str) -> None:
    """A test dependency is not installed: fail in CI, skip on a developer's machine."""
    message = f"{what}; install it (`.ci/run` does, with apt-get)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port nothing listens on now (the OS's choice; used at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, deadline: float, process: subprocess.Popen[bytes] | None) -> None:
    """Return once ``127.0.0.1:port`` accepts connections; fail at ``deadline``."""
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on port {port}")
        time.sleep(0.02)


@dataclass
class RedisServer:
    """A private ``redis-server`` without persistence; ``stop``/``start`` keep its port."""

    binary: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # fmt: off
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--protected-mode", "no",
        ]
        # fmt: on
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, time.monotonic() + 10, self.process)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def flush(self) -> None:
        """Forget every key, so that each test starts from an empty Redis."""
        import redis

        client = redis.Redis(port=self.port)
        try:
            client.flushall()
        finally:
            client.close()


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def postgres_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: ``pg_config --bindir``, else Debian's path."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True
            )
            candidates.append(Path(out.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    return None


@dataclass
class PostgresCluster:
    """A throw-away PostgreSQL cluster in a temp dir on a free loopback port.

    The server refuses to run as root: as root, it runs as the ``postgres`` system
    user (created by Debian's package; created here when missing). It trusts local
    connections and skips fsync: test data need not survive a power cut.
    """

    bindir: Path
    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="wsgen-pg-")))

    def _run(self, *args: str) -> None:
        command = [str(a) for a in args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd="/")
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")

    def start(self) -> None:
        data = self.directory / "data"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
            shutil.chown(self.directory, "postgres")
        self._run(
            self.bindir / "initdb", "-D", data, "-U", "postgres", "-A", "trust",
            "--no-sync", "-E", "UTF8", "--locale", "C",
        )  # fmt: skip
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            self.bindir / "pg_ctl", "-D", data, "-o", options, "-l", self.directory / "log",
            "-w", "-t", "30", "start",
        )  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            data = self.directory / "data"
            self._run(self.bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> None:
        """Run one SQL statement with ``psql`` (sync: usable from any fixture)."""
        # fmt: off
        command = [
            str(self.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
            "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
            "-d", database, "-c", statement,
        ]
        # fmt: on
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"psql {statement!r} failed: {result.stderr}")

    def create_database(self, template: str | None = None) -> str:
        """A new database (a copy of ``template`` when given); its name."""
        name = new_database_name()
        self.sql(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def new_database_name() -> str:
    return "t_" + uuid.uuid4().hex[:16]
