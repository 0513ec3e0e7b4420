"""A private PostgreSQL 15 cluster per test, for the change data capture tests.

Debian's server binaries (/usr/lib/postgresql/15/bin, package postgresql-15; scripts/test's deps
phase installs it) run a cluster of the test's own: initdb into a fresh directory under /tmp,
then `postgres` as a direct child of pytest, listening on 127.0.0.1 on a free port with its unix
socket in that directory. The `15/main` cluster the Debian package creates is never used, and
left as it is.

initdb and postgres refuse to run as root: when the tests run as root (CI), both run as the
`postgres` OS user, which owns the directory. The cluster has `wal_level=logical` (or what the
constructor asks for, to test a misconfigured server) and room for replication slots and WAL
senders. Two roles can connect:

- `postgres`, the superuser, only over the unix socket (trust: the socket's directory is
  private); `sql(..., as_superuser=True)` uses it to set up what a test needs.
- `spate` (password `spate-secret`), no superuser but LOGIN REPLICATION, owner of database
  `inventory`, over TCP with scram-sha-256, for normal and replication connections: what a
  connector is configured with (`host`, `port`, `user`, `password`, `dbname`, `url`).

The postmaster gets SIGKILL if pytest dies (no orphan servers in CI). `cleanup()` (the fixture's
teardown) shuts down in immediate mode and removes the directory, whatever the test did.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import psycopg
from psycopg import sql as pgsql

PG_BINDIR = Path("/usr/lib/postgresql/15/bin")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
# Attempts at a free port on the first start: another process may take the port the kernel
# gave us between our probe closing it and postgres binding it.
PORT_ATTEMPTS = 5
SUPERUSER = "postgres"
OS_USER = "postgres"


def _die_with_parent() -> None:
    """Runs in the child before exec, after it took the postgres user's ids (a change of
    credentials clears the setting): SIGKILL it if pytest dies."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, ...; None
    for a process that is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    return stat[stat.rindex(")") + 2 :].split()


def _children(ppid: int) -> list[int]:
    children = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == ppid:
                children.append(int(entry.name))
    return children


def _alive(pid: int) -> bool:
    """Not exited. A zombie has: it holds no shared memory, so a new postmaster need not wait
    for it to be reaped (an orphan's zombie may never be, where PID 1 does not reap)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


class Postgres:
    """One PostgreSQL 15 cluster in a temporary directory, restartable on the same data."""

    def __init__(
        self,
        log_path: Path | None = None,
        wal_level: str = "logical",
        user: str = "spate",
        password: str = "spate-secret",
        dbname: str = "inventory",
        settings: dict[str, str] | None = None,
    ):
        """`log_path`: where the server's log goes (kept after cleanup; default: inside the
        cluster's directory). `settings`: more `-c name=value` server settings; they and
        `wal_level` may be changed between starts."""
        for binary in ("initdb", "postgres"):
            if not os.access(PG_BINDIR / binary, os.X_OK):
                raise AssertionError(
                    f"{PG_BINDIR / binary} not found: install Debian's postgresql-15 "
                    '(SPATE_TEST_PHASES="deps" scripts/test does)'
                )
        self.wal_level = wal_level
        self.settings = dict(settings or {})
        self._user = user
        self._password = password
        self._dbname = dbname
        self._as_postgres = os.geteuid() == 0
        self.base_dir = Path(tempfile.mkdtemp(prefix="spate-pg-"))
        self.data_dir = self.base_dir / "data"
        self.log_path = log_path or self.base_dir / "server.log"
        self._port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.last_start_s = 0.0
        self._initialized = False
        if self._as_postgres:
            shutil.chown(self.base_dir, OS_USER, OS_USER)

    # --- what a client needs -----------------------------------------------------------------

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        assert self._port, "the cluster has not been started"
        return self._port

    @property
    def user(self) -> str:
        return self._user

    @property
    def password(self) -> str:
        return self._password

    @property
    def dbname(self) -> str:
        return self._dbname

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.dbname}"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir

    def connect(self, **kwargs: Any) -> psycopg.Connection:
        """A psycopg connection as the login user to its database, over TCP (scram-sha-256).
        Keyword arguments go to psycopg.connect (e.g. `autocommit=True`)."""
        params: dict[str, Any] = dict(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.dbname,
            connect_timeout=10,
        )
        params.update(kwargs)
        return psycopg.connect(**params)

    def superuser_connect(self, dbname: str | None = None, **kwargs: Any) -> psycopg.Connection:
        """A psycopg connection as the superuser `postgres`, over the unix socket."""
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=SUPERUSER,
            dbname=dbname or self.dbname,
            connect_timeout=10,
            **kwargs,
        )

    def sql(
        self,
        query: str,
        params: Sequence[Any] | dict[str, Any] | None = None,
        *,
        as_superuser: bool = False,
        dbname: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """Runs one statement (or several, without `params`) in autocommit mode; returns the
        rows of the last one ([] for a statement that returns none)."""
        if as_superuser:
            conn = self.superuser_connect(dbname, autocommit=True)
        else:
            conn = self.connect(autocommit=True, **({"dbname": dbname} if dbname else {}))
        with conn, conn.cursor() as cur:
            cur.execute(query, params)
            while cur.nextset():
                pass
            return cur.fetchall() if cur.description is not None else []

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Postgres:
        """Starts the server (initdb first, the first time) and waits until it accepts
        connections. The first start picks a free port; later ones keep it, so clients that
        reconnect find the server again."""
        assert not self.running(), "postgres is already running"
        began = time.monotonic()
        if not self._initialized:
            self._initdb()
        first = self._port == 0
        for attempt in range(1, PORT_ATTEMPTS + 1):
            if first:
                self._port = _free_port()
            if self._launch():
                break
            if not first or attempt == PORT_ATTEMPTS:
                raise AssertionError(
                    f"postgres could not listen on 127.0.0.1:{self._port}\n" + self.log_tail()
                )
        if not self._initialized:
            self._create_user_and_database()
            self._initialized = True
        self.last_start_s = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT, as `pg_ctl stop -m fast`): sessions are ended, a checkpoint
        is written, and the postmaster exits once all its processes have."""
        proc = self._require_proc()
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._kill_all()
            raise AssertionError(
                f"postgres did not shut down within {STOP_TIMEOUT_S}s of SIGINT\n"
                + self.log_tail()
            )
        self._note(f"----- stopped (fast), exit code {code}")
        assert code == 0, f"postgres exited with code {code} on a fast shutdown\n" + self.log_tail()

    def kill(self) -> None:
        """A crash: SIGKILL to the postmaster and to every process it started (backends, WAL
        senders, checkpointer...). No shutdown checkpoint; the next start recovers from the WAL.
        (Killing the postmaster alone would leave its children alive for a moment, holding the
        shared memory, and a start in that moment would refuse to run.)"""
        self._require_proc()
        self._kill_all()
        self._note("----- killed with SIGKILL")

    def restart(self) -> Postgres:
        """Starts again on the same data and port (after stop() or kill(); stops first if
        running)."""
        if self.running():
            self.stop()
        return self.start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self) -> None:
        """Immediate shutdown (SIGQUIT, as `pg_ctl stop -m immediate`; SIGKILL if that is not
        enough), then removes the cluster's directory. Safe to call in any state, more than
        once."""
        proc = self.proc
        try:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    pass
                # The postmaster waits for its children in immediate mode too; this is in
                # case it did not exit in time.
                self._kill_all()
                self._note("----- stopped (immediate) at cleanup")
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    # --- log ---------------------------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 60) -> str:
        tail = self.log_text().splitlines()[-n:]
        return f"--- last {len(tail)} postgres log lines ({self.log_path}) ---\n" + "\n".join(tail)

    # --- inside ------------------------------------------------------------------------------

    def _run_as_owner(self) -> dict[str, Any]:
        """Popen arguments that run a server binary as the cluster's owner."""
        args: dict[str, Any] = dict(cwd=self.base_dir, stdin=subprocess.DEVNULL)
        if self._as_postgres:
            args.update(user=OS_USER, group=OS_USER, extra_groups=[])
        return args

    def _note(self, line: str) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def _initdb(self) -> None:
        command = [
            str(PG_BINDIR / "initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username",
            SUPERUSER,
            "--encoding",
            "UTF8",
            "--no-locale",
            "--auth-local",
            "trust",
            "--auth-host",
            "scram-sha-256",
            "--no-sync",
        ]
        self._note(f"----- {' '.join(command)}")
        result = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **self._run_as_owner()
        )
        self._note(result.stdout.decode("utf-8", "replace").rstrip("\n"))
        if result.returncode != 0:
            raise AssertionError(f"initdb failed with code {result.returncode}\n" + self.log_tail())
        # Written whole rather than relying on initdb's defaults: the superuser only over the
        # private socket; password logins over TCP, replication connections included.
        (self.data_dir / "pg_hba.conf").write_text(
            "# TYPE  DATABASE     USER  ADDRESS       METHOD\n"
            "local   all          all                 trust\n"
            "local   replication  all                 trust\n"
            "host    all          all   127.0.0.1/32  scram-sha-256\n"
            "host    replication  all   127.0.0.1/32  scram-sha-256\n"
        )
        if self._as_postgres:
            shutil.chown(self.data_dir / "pg_hba.conf", OS_USER, OS_USER)

    def _command(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self._port),
            "unix_socket_directories": str(self.socket_dir),
            "wal_level": self.wal_level,
            "max_replication_slots": "10",
            "max_wal_senders": "10",
            # Test data need not survive the machine: no fsync, a smaller footprint.
            "fsync": "off",
            "shared_buffers": "32MB",
            "logging_collector": "off",
            **self.settings,
        }
        command = [str(PG_BINDIR / "postgres"), "-D", str(self.data_dir)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        return command

    def _launch(self) -> bool:
        """Starts the postmaster and waits until it accepts connections; False if it exited
        because its port was taken."""
        self.starts += 1
        command = self._command()
        self._note(f"----- start #{self.starts}: {' '.join(command)}")
        log_from = self.log_path.stat().st_size
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Not in pytest's process group: a ^C in the terminal reaches pytest only,
                # whose teardown then shuts the server down.
                start_new_session=True,
                preexec_fn=_die_with_parent,
                **self._run_as_owner(),
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        last_error = ""
        while True:
            code = self.proc.poll()
            if code is not None:
                with open(self.log_path, "rb") as f:
                    f.seek(log_from)
                    this_start = f.read().decode("utf-8", "replace")
                if "could not bind IPv4 address" in this_start and "in use" in this_start:
                    return False
                raise AssertionError(
                    f"postgres exited with code {code} before it accepted connections\n"
                    + self.log_tail()
                )
            try:
                # While it starts up (or recovers after a crash) the server refuses connections
                # with "the database system is starting up".
                with self.superuser_connect("postgres", autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.OperationalError as e:
                last_error = str(e).strip()
            if time.monotonic() > deadline:
                self._kill_all()
                raise AssertionError(
                    f"postgres accepted no connection within {READY_TIMEOUT_S}s "
                    f"(last: {last_error})\n" + self.log_tail()
                )
            time.sleep(0.02)

    def _create_user_and_database(self) -> None:
        with self.superuser_connect("postgres", autocommit=True) as conn:
            conn.execute(
                pgsql.SQL("CREATE ROLE {} LOGIN REPLICATION PASSWORD {}").format(
                    pgsql.Identifier(self.user), pgsql.Literal(self.password)
                )
            )
            conn.execute(
                pgsql.SQL("CREATE DATABASE {} OWNER {}").format(
                    pgsql.Identifier(self.dbname), pgsql.Identifier(self.user)
                )
            )

    def _require_proc(self) -> subprocess.Popen[bytes]:
        assert self.proc is not None and self.proc.poll() is None, (
            "postgres is not running\n" + self.log_tail()
        )
        return self.proc

    def _kill_all(self) -> None:
        """SIGKILL to the postmaster and every process it started; returns once all are gone.

        Each of its children calls setsid(), so no process group holds them all: the
        postmaster is stopped (SIGSTOP) so that it forks no more while they are listed."""
        proc = self.proc
        if proc is None:
            return
        children: list[int] = []
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGSTOP)
                children = _children(proc.pid)
                for pid in [proc.pid, *children]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            except ProcessLookupError:
                pass
        proc.wait()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(_alive(pid) for pid in children):
            if time.monotonic() > deadline:
                alive = [pid for pid in children if _alive(pid)]
                raise AssertionError(
                    f"postgres processes {alive} outlived SIGKILL by {STOP_TIMEOUT_S}s"
                )
            time.sleep(0.01)
