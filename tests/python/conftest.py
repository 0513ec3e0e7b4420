"""Fixtures that run a real `spate serve` process for each test.

The broker binary comes from $SPATE_BIN, else $CARGO_TARGET_DIR/debug/spate (default target dir
$HOME/.cache/spate/target, as scripts/test sets it). Each broker gets ports picked by the kernel
and a data directory under the test's tmp_path; `restart()` starts it again on the same data.

At teardown every broker is killed, and the test fails if a broker logged an ERROR line (or a
panic) that the test did not allow with `broker.allow_errors(regex)`, as Neon's test suite does.
Brokers may log text (the default) or JSON lines (`--log-format json`); both are understood.

`postgres` (and `postgres_factory`) run a private PostgreSQL 15 cluster for the change data
capture tests (see postgres.py), removed at teardown.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import forget_clients, wait_until
from postgres import Postgres

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
READY_LINE = re.compile(
    r"spate is ready.*?kafka_addr=(\S+).*?http_addr=(\S+).*?registry_addr=(\S+)"
)
CONNECT_READY_LINE = re.compile(r"connect worker is ready.*?connect_addr=(\S+)")
SQL_READY_LINE = re.compile(r"sql worker is ready.*?sql_addr=(\S+)")
ERROR_LINE = re.compile(r'^\S+\s+ERROR\b|^\{.*"level":"ERROR"|\bpanicked at\b')


def ready_addresses(line: str) -> tuple[str, str, str] | None:
    """The Kafka, HTTP and registry addresses of a "spate is ready" line, text or JSON."""
    m = READY_LINE.search(line)
    if m:
        return m.group(1), m.group(2), m.group(3)
    if line.startswith("{") and "spate is ready" in line:
        try:
            event = json.loads(line)
        except ValueError:
            return None
        if event.get("message") == "spate is ready":
            return event["kafka_addr"], event["http_addr"], event["registry_addr"]
    return None


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it if pytest dies (no orphan brokers in CI)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def spate_binary() -> Path:
    explicit = os.environ.get("SPATE_BIN")
    if explicit:
        path = Path(explicit)
    else:
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/spate/target")
        path = Path(target) / "debug" / "spate"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"spate binary not found at {path}: run `cargo build -p spate-cli` "
            "(with CARGO_TARGET_DIR=$HOME/.cache/spate/target) or set SPATE_BIN",
            pytrace=False,
        )
    return path


class SpateBroker:
    """One `spate serve` process, restartable on the same data directory."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, args: list[str]):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: list[str] = []
        self.allowed_errors: list[re.Pattern[str]] = []
        self.kafka_addr = ""
        self.http_addr = ""
        self.registry_addr = ""
        self.connect_addr = ""
        self.sql_addr = ""
        # What `spate serve` listens on; port 0 lets the kernel pick (see `keep_ports`).
        self.kafka_listen = "127.0.0.1:0"
        self.http_listen = "127.0.0.1:0"
        self.registry_listen = "127.0.0.1:0"
        self.connect_listen = "127.0.0.1:0"
        # The SQL worker runs only where a test asks for it (`spate_factory(sql_listen=...)`).
        self.sql_listen = "off"
        self.starts = 0
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--kafka-listen",
            self.kafka_listen,
            "--http-listen",
            self.http_listen,
            "--registry-listen",
            self.registry_listen,
            "--connect-listen",
            self.connect_listen,
            "--sql-listen",
            self.sql_listen,
            *self.args,
        ]

    def start(self) -> SpateBroker:
        assert not self.running(), "broker is already running"
        self.starts += 1
        self.connect_addr = ""
        self.sql_addr = ""
        ready = threading.Event()
        addrs: dict[str, str] = {}
        self._append(f"----- start #{self.starts}: {' '.join(self.command())}")
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent,
        )
        self.proc = proc

        def read() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self._append(line)
                connect = CONNECT_READY_LINE.search(line)
                if connect:
                    self.connect_addr = connect.group(1)
                sql = SQL_READY_LINE.search(line)
                if sql:
                    self.sql_addr = sql.group(1)
                found = ready_addresses(line)
                if found and not ready.is_set():
                    addrs["kafka"], addrs["http"], addrs["registry"] = found
                    ready.set()

        self._reader = threading.Thread(target=read, name=f"spate-log-{self.starts}", daemon=True)
        self._reader.start()

        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready.wait(0.05):
            if proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError(
                    f"spate serve exited with code {proc.returncode} before it was ready\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"spate serve logged no 'spate is ready' line within {READY_TIMEOUT_S}s\n"
                    + self.log_tail()
                )
        self.kafka_addr = addrs["kafka"]
        self.http_addr = addrs["http"]
        self.registry_addr = addrs["registry"]
        wait_until(lambda: self.health_status() == 200, timeout_s=30, what="GET /health answering 200")
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM and wait; asserts a clean exit (code 0)."""
        proc = self._require_proc()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"spate serve did not exit within {STOP_TIMEOUT_S}s of SIGTERM\n" + self.log_tail()
            )
        self._join_reader()
        assert code == 0, f"spate serve exited with code {code} on SIGTERM\n" + self.log_tail()
        return code

    def kill(self) -> None:
        """SIGKILL: the process dies wherever it is, as in a crash."""
        proc = self._require_proc()
        proc.kill()
        proc.wait()
        self._join_reader()
        self._append(f"----- killed with SIGKILL (start #{self.starts})")

    def keep_ports(self) -> None:
        """Later starts listen on the addresses this start got, so clients that stay connected
        across a restart (a producer retrying through a crash) find the broker again."""
        assert self.kafka_addr and self.http_addr, "keep_ports() needs a started broker"
        self.kafka_listen = self.kafka_addr
        self.http_listen = self.http_addr
        self.registry_listen = self.registry_addr
        if self.connect_addr:
            self.connect_listen = self.connect_addr
        if self.sql_addr:
            self.sql_listen = self.sql_addr

    def restart(self) -> SpateBroker:
        """Starts again on the same data directory (after stop() or kill())."""
        if self.running():
            self.stop()
        return self.start()

    def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._join_reader()

    def _require_proc(self) -> subprocess.Popen[bytes]:
        assert self.proc is not None and self.proc.poll() is None, (
            "broker is not running\n" + self.log_tail()
        )
        return self.proc

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(10)

    # --- what it serves ----------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return self.kafka_addr

    def health_status(self) -> int | None:
        try:
            with urllib.request.urlopen(f"http://{self.http_addr}/health", timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as e:
            return e.code
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    # --- log ---------------------------------------------------------------------------------

    def _append(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    def log_text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def log_tail(self, n: int = 60) -> str:
        with self._lock:
            tail = self.lines[-n:]
        return f"--- last {len(tail)} broker log lines ({self.log_path}) ---\n" + "\n".join(tail)

    def allow_errors(self, *patterns: str) -> None:
        """Allows ERROR lines matching any of these regexes (searched, not anchored)."""
        self.allowed_errors.extend(re.compile(p) for p in patterns)

    def unexpected_errors(self) -> list[str]:
        with self._lock:
            lines = list(self.lines)
        return [
            line
            for line in lines
            if ERROR_LINE.search(line) and not any(p.search(line) for p in self.allowed_errors)
        ]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def spate_factory(request, tmp_path):
    """Makes started brokers: `spate_factory(args=[...], data_dir=None, connect_listen=...)`
    (`connect_listen="off"` runs no in-process Connect worker; `sql_listen="127.0.0.1:0"` runs
    the in-process SQL worker, whose address is then `broker.sql_addr`)."""
    binary = spate_binary()
    brokers: list[SpateBroker] = []

    def make(
        args: list[str] | None = None,
        data_dir: Path | None = None,
        connect_listen: str = "127.0.0.1:0",
        sql_listen: str = "off",
    ) -> SpateBroker:
        n = len(brokers)
        broker = SpateBroker(
            binary,
            data_dir or tmp_path / f"data-{n}",
            tmp_path / f"broker-{n}.log",
            args or [],
        )
        broker.connect_listen = connect_listen
        broker.sql_listen = sql_listen
        brokers.append(broker)
        return broker.start()

    yield make

    forget_clients()
    for broker in brokers:
        broker.ensure_dead()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for broker in brokers:
            print(broker.log_tail(200))
    unexpected = [line for b in brokers for line in b.unexpected_errors()]
    if unexpected:
        pytest.fail(
            "the broker logged unexpected ERROR lines (allow them with broker.allow_errors):\n"
            + "\n".join(unexpected[:50]),
            pytrace=False,
        )


@pytest.fixture
def spate(spate_factory) -> SpateBroker:
    """A broker with the default settings."""
    return spate_factory()


@pytest.fixture
def postgres_factory(request, tmp_path):
    """Makes started PostgreSQL clusters: `postgres_factory(wal_level="logical", settings=None)`.
    Their logs stay in tmp_path; at teardown each is shut down in immediate mode and its data
    removed, whatever the test did."""
    clusters: list[Postgres] = []

    def make(wal_level: str = "logical", settings: dict[str, str] | None = None) -> Postgres:
        cluster = Postgres(
            log_path=tmp_path / f"postgres-{len(clusters)}.log",
            wal_level=wal_level,
            settings=settings,
        )
        clusters.append(cluster)
        return cluster.start()

    yield make

    failed = getattr(request.node, "rep_call", None)
    for cluster in clusters:
        if failed is not None and failed.failed:
            print(cluster.log_tail(200))
        cluster.cleanup()


@pytest.fixture
def postgres(postgres_factory) -> Postgres:
    """A started cluster with wal_level=logical, user `spate` owning database `inventory`."""
    return postgres_factory()
