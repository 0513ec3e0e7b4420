"""A private `spate serve` for the benchmarks (bench/nexmark/run.py, bench/ai/embed.py): every
listener on a port the kernel picks, the addresses read from its log lines, its log kept in a
file, its CPU time from /proc, and SIGKILL if the benchmark dies (no orphan servers)."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

READY_LINE = re.compile(r"spate is ready.*?kafka_addr=(\S+).*?http_addr=(\S+)")
SQL_READY_LINE = re.compile(r"sql worker is ready.*?sql_addr=(\S+)")
COMMIT = re.compile(r'spate is ready.*?commit="?([0-9a-f]+)')
ERROR_LINE = re.compile(r"^\S+\s+ERROR\b|\bpanicked at\b")  # as tests/python/conftest.py


def default_binaries() -> list[Path]:
    """target/release/spate of the repository, else $CARGO_TARGET_DIR/release/spate when that is
    set, else ~/.cache/spate/target/release/spate (where the project's builds go), else the debug
    build the tests use."""
    target = os.environ.get("CARGO_TARGET_DIR")
    cache = Path.home() / ".cache" / "spate" / "target"
    paths = [REPO / "target" / "release" / "spate"]
    if target:
        paths.append(Path(target) / "release" / "spate")
    paths.append(cache / "release" / "spate")
    paths.append(Path(target or cache) / "debug" / "spate")
    return paths


def find_binary(explicit: str | None, wait_s: float = 120.0) -> Path:
    """`explicit` (--spate), else the first of default_binaries() that exists. Waits a while for a
    binary that is being rebuilt (briefly missing)."""
    candidates = [Path(explicit)] if explicit else default_binaries()
    deadline = time.monotonic() + wait_s
    said = False
    while True:
        for path in candidates:
            if path.is_file() and os.access(path, os.X_OK):
                return path
        if time.monotonic() > deadline:
            raise SystemExit(f"no spate binary at {', '.join(map(str, candidates))} (build it, or --spate PATH)")
        if not said:
            print(f"waiting up to {wait_s:.0f} s for a spate binary (being rebuilt?)", file=sys.stderr)
            said = True
        time.sleep(1.0)


def die_with_parent() -> None:
    """In the child before exec: SIGKILL it if this script dies."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name (field 2) may hold spaces: split after its closing parenthesis.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class Spate:
    """A private `spate serve` with `extra_args`; with `sql` its SQL worker runs too and `start`
    waits for it. Its log goes to `log_path`."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, extra_args: list[str], sql: bool = False) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_args = extra_args
        self.sql = sql
        self.proc: subprocess.Popen[bytes] | None = None
        self.kafka_addr = ""
        self.http_addr = ""
        self.sql_addr = ""
        self.commit = ""
        self.error_lines: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self, timeout_s: float = 120.0) -> None:
        command = [
            str(self.binary), "serve",
            "--data-dir", str(self.data_dir),
            "--kafka-listen", "127.0.0.1:0",
            "--http-listen", "127.0.0.1:0",
            "--registry-listen", "127.0.0.1:0",
            "--connect-listen", "off",
            "--sql-listen", "127.0.0.1:0" if self.sql else "off",
            *self.extra_args,
        ]
        wanted = {"kafka", "sql"} if self.sql else {"kafka"}
        ready = threading.Event()
        found: dict[str, str] = {}
        log = self.log_path.open("w")
        log.write(" ".join(command) + "\n")
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        self.proc = proc

        def read() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                log.write(line + "\n")
                log.flush()
                if ERROR_LINE.search(line):
                    self.error_lines.append(line)
                if m := READY_LINE.search(line):
                    found["kafka"], found["http"] = m.group(1), m.group(2).strip('",')
                if m := COMMIT.search(line):
                    found["commit"] = m.group(1)
                if m := SQL_READY_LINE.search(line):
                    found["sql"] = m.group(1)
                if wanted <= found.keys():
                    ready.set()
            log.close()

        self._reader = threading.Thread(target=read, name="spate-log", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout_s
        while not ready.wait(0.05):
            if proc.poll() is not None:
                self._reader.join(5)
                raise RuntimeError(
                    f"spate exited with code {proc.returncode} before it was ready:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                what = "'spate is ready' and 'sql worker is ready'" if self.sql else "'spate is ready'"
                raise RuntimeError(f"spate logged no {what} within {timeout_s} s:\n{self.log_tail()}")
        self.kafka_addr = found["kafka"]
        self.http_addr = found["http"]
        self.sql_addr = found.get("sql", "")
        self.commit = found.get("commit", "")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as e:
            return f"(no log: {e})"

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process (all its threads)."""
        assert self.proc is not None
        return process_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(10)
