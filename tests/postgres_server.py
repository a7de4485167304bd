"""A real PostgreSQL server for the tests and benchmarks/soak.py: Debian's `postgresql` package
(installed by .ci/system-packages), a throw-away cluster in a temporary folder, listening on
127.0.0.1 only, with a password (scram-sha-256), stopped at the end.

`initdb` refuses to run as root, so under root the cluster is made and run by the package's own
unprivileged `postgres` account. Where no server binaries are found, `PostgresUnavailable` says
why (the tests skip with that reason)."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

START_SECONDS = 60.0


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here (the reason says why)."""


def server_bin() -> Path:
    """The folder of initdb/pg_ctl: Debian keeps them in /usr/lib/postgresql/<version>/bin."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise PostgresUnavailable("no PostgreSQL server here (Debian package `postgresql`; `make system-packages` "
                              "installs it as root)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    root: Path  # the cluster's folder (data/, the socket, the log)
    port: int
    user: str = "dagster"
    password: str = ""
    process_user: str | None = None  # the OS account running the server (root cannot)

    @property
    def env(self) -> dict[str, str]:
        """The DAGSTER_PG_* variables of instance_yaml.PG_ENV for database `db`."""
        return {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_USER": self.user,
                "DAGSTER_PG_PASSWORD": self.password, "DAGSTER_PG_DB": "postgres"}

    def url(self, db: str) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str) -> dict[str, str]:
        """A new empty database; the DAGSTER_PG_* variables that point at it."""
        import psycopg2

        connection = psycopg2.connect(self.url("postgres"))
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return {**self.env, "DAGSTER_PG_DB": name}

    def _run(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(args, user=self.process_user, check=False, capture_output=True, text=True,
                              timeout=START_SECONDS, **kwargs)

    def start(self) -> PostgresServer:
        bin_dir = server_bin()
        self.password = self.password or secrets.token_urlsafe(16)
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and no `postgres` account to run the server as") from None
            self.process_user = "postgres"
        self.root.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.process_user:
            for path in (self.root, pwfile):
                shutil.chown(path, self.process_user, self.process_user)
        data = self.root / "data"
        done = self._run([str(bin_dir / "initdb"), "-D", str(data), "-U", self.user, "--pwfile", str(pwfile),
                          "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        pwfile.unlink()
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
                   "-c fsync=off -c max_connections=200 -c shared_buffers=64MB")
        done = self._run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(self.root / "server.log"),
                          "-o", options, "-w", "-t", str(int(START_SECONDS)), "start"])
        if done.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")[-800:] if (self.root / "server.log").exists() else ""
            raise PostgresUnavailable(f"PostgreSQL did not start: {done.stderr.strip()[-300:]} {log}")
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import psycopg2

        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                psycopg2.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg2.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(f"PostgreSQL on port {self.port} never accepted a login: {exc}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        data = self.root / "data"
        if data.exists():
            self._run([str(server_bin() / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PostgresServer:
    """A started server in a new folder of the system's temporary folder (which the server's
    account can reach, unlike pytest's root-only one); `stop()` removes it. PostgresUnavailable
    with the reason when it cannot be started."""
    try:
        import psycopg2  # noqa: F401  (dagster-postgres brings it)
    except ImportError:
        raise PostgresUnavailable("psycopg2 is not installed (pip install 'datman-flow[postgres]')") from None
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="datman-pg-")), free_port())
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise
