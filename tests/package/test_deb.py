"""The Debian package as a user gets it: made by scripts/release, installed with `dpkg -i`,
run as its systemd unit says, removed with `dpkg -r` and `dpkg --purge`.

This machine has no running systemd (containers and CI rarely do), so the test reads the
installed unit (checked by `systemd-analyze verify` where systemd is installed) and starts its
ExecStart as its User and Group in its WorkingDirectory with systemd's bare environment, then
stops it with the unit's KillSignal. It changes the machine (a package, a system user), so it
needs root and refuses to run where a spate package is already installed.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from helpers import unique, wait_until

ROOT = Path(__file__).resolve().parents[2]
UNIT = Path("/usr/lib/systemd/system/spate.service")
CONFFILE = Path("/etc/spate/spate.toml")
DATA_DIR = Path("/var/lib/spate")
# The packaged config listens where spate.example.toml does.
PORTS = (9092, 8080, 8081)
READY_LINE = re.compile(r"spate is ready.*?kafka_addr=(\S+)")
ERROR_LINE = re.compile(r"^\S+\s+ERROR\b|\bpanicked at\b")
START_TIMEOUT_S = 60.0


def run(args: list[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited with {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def package_status() -> str:
    """dpkg's status of the spate package ("install ok installed", ...); "" once purged."""
    proc = run(["dpkg-query", "-W", "-f=${Status}", "spate"], check=False)
    status = proc.stdout.strip() if proc.returncode == 0 else ""
    return "" if status.endswith("not-installed") else status


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


def read_unit(path: Path) -> dict[str, dict[str, str]]:
    """A systemd unit's sections and keys (a later assignment of a key wins)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not KEY=VALUE: {line}"
        current[key.strip()] = value.strip()
    return sections


class Service:
    """The unit's ExecStart, run as systemd would run it."""

    def __init__(self, service: dict[str, str]):
        user = pwd.getpwnam(service["User"])
        self.lines: list[str] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self.proc = subprocess.Popen(
            shlex.split(service["ExecStart"]),
            user=service["User"],
            group=service["Group"],
            extra_groups=[],
            cwd=service["WorkingDirectory"],
            # systemd gives services this environment, not the caller's.
            env={
                "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG": "C.UTF-8",
                "HOME": user.pw_dir,
                "USER": user.pw_name,
                "LOGNAME": user.pw_name,
            },
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.kafka_addr = ""

        def read() -> None:
            assert self.proc.stdout is not None
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self._lock:
                    self.lines.append(line)
                m = READY_LINE.search(line)
                if m and not ready.is_set():
                    self.kafka_addr = m.group(1)
                    ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.wait(0.05):
            assert self.proc.poll() is None, (
                f"the service exited with {self.proc.returncode} before it was ready\n" + self.log()
            )
            assert time.monotonic() < deadline, "no 'spate is ready' line\n" + self.log()

    def log(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(90)
        self._reader.join(10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def deb(tmp_path: Path) -> Path:
    """scripts/release's package of the debug build scripts/test's build phase made (no second
    build); the tarball and the .debug file are beside it."""
    if os.geteuid() != 0:
        pytest.fail("the package test installs a .deb: run it as root", pytrace=False)
    status = package_status()
    if status:
        pytest.fail(
            f"a spate package is already installed here ({status}): the test would replace it",
            pytrace=False,
        )
    out = tmp_path / "dist"
    run([str(ROOT / "scripts" / "release"), "--profile", "dev", "--no-build", "--out", str(out)])
    debs = list(out.glob("spate_*.deb"))
    assert len(debs) == 1, f"expected one .deb in {out}: {debs}"
    yield debs[0]
    # Whatever happened, leave the machine as it was found (but for the system user).
    if package_status():
        run(["dpkg", "--purge", "spate"], check=False)


def test_deb_installs_runs_as_its_unit_and_purges(deb: Path):
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    fields = run(["dpkg-deb", "--field", str(deb)]).stdout
    assert re.search(r"^Package: spate$", fields, re.M), fields
    assert re.search(r"^Depends: .*\blibc6 \(>= [0-9.]+\)", fields, re.M), fields
    assert re.search(rf"^Architecture: {arch}$", fields, re.M), fields

    # The tarball beside it: the binary and the three files a user reads, in one directory.
    (tarball,) = deb.parent.glob("spate-*.tar.gz")
    name = tarball.name.removesuffix(".tar.gz")
    assert (deb.parent / f"{name}.debug").is_file()
    with tarfile.open(tarball) as tar:
        assert sorted(tar.getnames()) == [
            name, *(f"{name}/{f}" for f in ("LICENSE", "README.md", "spate", "spate.example.toml"))
        ]
        assert tar.getmember(f"{name}/spate").mode == 0o755

    run(["dpkg", "-i", str(deb)])
    assert package_status() == "install ok installed"
    assert "/etc/spate/spate.toml" in run(["dpkg-query", "-W", "-f=${Conffiles}", "spate"]).stdout
    binary_version = run(["/usr/bin/spate", "--version"]).stdout
    assert re.fullmatch(r"spate \d+\.\d+\.\d+\S* \(commit \S+\)\n", binary_version), binary_version
    assert deb.name == f"spate_{binary_version.split()[1].replace('-', '~')}_{arch}.deb"

    # The maintainer scripts made the user and its data directory.
    user = pwd.getpwnam("spate")
    assert user.pw_uid < 1000, f"spate is a system user: {user}"
    assert user.pw_dir == str(DATA_DIR)
    assert user.pw_shell in ("/usr/sbin/nologin", "/bin/false"), user.pw_shell
    st = DATA_DIR.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (user.pw_uid, user.pw_gid, 0o750)
    assert re.search(r'^data-dir = "/var/lib/spate"$', CONFFILE.read_text(), re.M)

    # The unit, as systemd would read it.
    if shutil.which("systemd-analyze"):
        verify = run(["systemd-analyze", "verify", str(UNIT)], check=False)
        assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    else:
        print("systemd-analyze not found (no systemd package): the unit is only parsed")
    unit = read_unit(UNIT)
    service = unit["Service"]
    assert service["ExecStart"] == "/usr/bin/spate serve --config /etc/spate/spate.toml"
    assert (service["User"], service["Group"]) == ("spate", "spate")
    assert service["WorkingDirectory"] == str(DATA_DIR)
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    kill_signal = getattr(signal, service.get("KillSignal", "SIGTERM"))

    busy = [p for p in PORTS if not port_free(p)]
    assert not busy, f"ports {busy} are in use: the packaged config listens on {PORTS}"

    svc = Service(service)
    try:
        topic = unique("packaged")
        run(["kcat", "-b", "localhost:9092", "-P", "-t", topic], input="hello from the .deb\n")
        consumed = run(["kcat", "-b", "localhost:9092", "-C", "-t", topic, "-o", "beginning",
                        "-e", "-q"])
        assert consumed.stdout == "hello from the .deb\n"
        # Written by the service's user, under the packaged data directory.
        partition = DATA_DIR / "topics" / topic / "0"
        logs = list(partition.glob("*.log"))
        assert logs and all(p.stat().st_uid == user.pw_uid for p in logs), logs
        code = svc.stop(kill_signal)
    finally:
        svc.kill()
    assert code == 0, f"the service exited with {code} on {kill_signal!r}\n" + svc.log()
    errors = [line for line in svc.lines if ERROR_LINE.search(line)]
    assert not errors, "the service logged errors:\n" + "\n".join(errors)

    # Installing again (an upgrade to the same version) keeps an edited conffile and the data.
    CONFFILE.write_text(CONFFILE.read_text() + "# edited by the operator\n")
    run(["dpkg", "-i", str(deb)])
    assert CONFFILE.read_text().endswith("# edited by the operator\n")
    assert partition.is_dir()

    # dpkg -r: the program goes, the configuration and the data stay.
    run(["dpkg", "-r", "spate"])
    assert package_status() == "deinstall ok config-files"
    assert not Path("/usr/bin/spate").exists()
    assert not UNIT.exists()
    assert CONFFILE.read_text().endswith("# edited by the operator\n")
    assert partition.is_dir()

    # dpkg --purge: nothing is left but the system user (Debian keeps system users).
    run(["dpkg", "--purge", "spate"])
    assert package_status() == ""
    assert not Path("/etc/spate").exists()
    assert not DATA_DIR.exists()
    assert pwd.getpwnam("spate").pw_uid == user.pw_uid
