"""Walks README.md top to bottom and runs its commands as a reader would.

A reader clones the repository, goes into it and types the README's ```sh blocks in order, in
one terminal (a `cd` or `export` carries over to the next command). The walk does the same in a
fresh copy of the checkout (its tracked and unignored files, no build output) made at
$CARGO_TARGET_DIR/readme-walk/spate, emptied first, so `./spate-data` and the files the README
asks for land there. `cargo install` puts `spate` under that directory (CARGO_INSTALL_ROOT), and
until it has, `spate` on the PATH fails: the README must say how to get it before using it.
CARGO_TARGET_DIR is kept, so the README's `cargo install` and `cargo run --release` build the
release binary as written, reusing the machine's build cache.

Every fenced block is classified, and one the walk cannot classify fails it, so a new README
section has to be walkable or say why not. A ```sh block runs command by command under
`bash -e -o pipefail`; anything else needs an annotation, an HTML comment (invisible when
rendered) on the line before the fence:

    <!-- readme-test: serve -->     the block starts `spate serve` (or `cargo run ... -- serve`):
                                    it runs in the background, replacing the server already
                                    running, and the rest of the block runs once it logs
                                    "spate is ready"
    <!-- readme-test: file NAME -->
                                    the block is a file the reader makes: written to NAME
    <!-- readme-test: certificate CERT KEY -->
                                    before the block, openssl makes a self-signed certificate
                                    and key for localhost (the block uses TLS files the README
                                    does not make)
    <!-- readme-test: skip: REASON -->
                                    not run, for the reason given (e.g. it would recurse)

Directives combine with `;` (`serve; certificate server.pem server.key`); `skip:` comes last and
its reason is the rest of the comment. A `serve` command in a block without `serve` fails the
walk (it would never return), as does a command that exits non-zero or outlives its deadline.
The last server is stopped with SIGINT (a reader's Ctrl-C) and must exit 0 without an ERROR
line in its log.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A fence opens with ``` or ~~~ (three or more) and an optional info string.
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
ANNOTATION = re.compile(r"^\s*<!--\s*readme-test:\s*(?P<body>.*?)\s*-->\s*$")
# `spate serve ...`, `cargo run ... -- serve ...`: commands that run until stopped.
SERVE = re.compile(r"(^|[\s/])(spate|--)\s+serve(\s|$)")
READY = "spate is ready"
ERROR_LINE = re.compile(r"^\S+\s+ERROR\b|\bpanicked at\b")
# Kafka, SASL_SSL (the README's SECURE listener), HTTP, schema registry.
README_PORTS = (9092, 9093, 8080, 8081, 8083)
COMMAND_TIMEOUT_S = 300.0
# `cargo install` / `cargo run --release` may build Spate from nothing.
BUILD_TIMEOUT_S = float(os.environ.get("SPATE_README_BUILD_TIMEOUT_S", "3600"))
SERVE_READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0


class WalkError(AssertionError):
    """The README cannot be walked: a block it cannot classify, or a command that failed."""


@dataclass
class Block:
    """One fenced block of the README and what the walk does with it."""

    line: int  # 1-based line of the opening fence
    info: str  # the fence's language, "" for none
    text: str
    serve: bool = False
    skip: str | None = None
    file: str | None = None
    certificate: tuple[str, str] | None = None

    def where(self) -> str:
        return f"README.md:{self.line}"


@dataclass
class Command:
    """One shell command of a ```sh block, continuation lines joined."""

    line: int
    text: str


def parse_annotation(body: str, where: str) -> dict:
    """`serve; file order.avsc` -> {"serve": True, "file": "order.avsc"}."""
    found: dict = {}
    # `skip: REASON` comes last and its reason is the rest of the comment, `;` and all.
    head, sep, reason = body.partition("skip:")
    directives = [d.strip() for d in head.split(";")]
    if sep:
        if not directives[-1]:
            directives.pop()
        directives.append("skip:" + reason)
    for directive in filter(None, directives):
        if directive == "serve":
            found["serve"] = True
        elif directive.startswith("skip:") and directive[5:].strip():
            found["skip"] = directive[5:].strip()
        elif directive.startswith("file ") and len(directive.split()) == 2:
            found["file"] = directive.split()[1]
        elif directive.startswith("certificate ") and len(directive.split()) == 3:
            found["certificate"] = tuple(directive.split()[1:])
        else:
            raise WalkError(
                f"{where}: unknown readme-test directive {directive!r}: "
                "serve, file NAME, certificate CERT KEY or skip: REASON"
            )
    return found


def parse_blocks(markdown: str) -> list[Block]:
    """Every fenced block, in order, with the annotation on the line before it."""
    lines = markdown.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            if ANNOTATION.match(lines[i]) and not (i + 1 < len(lines) and FENCE.match(lines[i + 1])):
                raise WalkError(
                    f"README.md:{i + 1}: a readme-test annotation must be the line right before "
                    "a fenced block"
                )
            i += 1
            continue
        fence = m.group("fence")
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(fence[0] * len(fence))
            and set(lines[i].strip()) == {fence[0]}
        ):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise WalkError(f"README.md:{start + 1}: the fenced block is never closed")
        i += 1
        block = Block(line=start + 1, info=m.group("info").lower(), text="\n".join(body) + "\n")
        previous = lines[start - 1] if start > 0 else ""
        a = ANNOTATION.match(previous)
        if a:
            for key, value in parse_annotation(a.group("body"), block.where()).items():
                setattr(block, key, value)
        blocks.append(block)
    return blocks


def commands(block: Block) -> list[Command]:
    """The block's commands: comments and blank lines dropped, `\\` continuations joined."""
    out: list[Command] = []
    pending: list[str] = []
    first = 0
    for n, raw in enumerate(block.text.splitlines()):
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if not pending:
            first = block.line + 1 + n
        if raw.rstrip().endswith("\\"):
            pending.append(raw.rstrip()[:-1])
            continue
        pending.append(raw)
        out.append(Command(first, " ".join(p.strip() for p in pending)))
        pending = []
    if pending:
        raise WalkError(f"{block.where()}: the last command ends with a line continuation")
    return out


def classify(blocks: list[Block]) -> None:
    """Fails on any block the walk would not know how to run."""
    for block in blocks:
        if block.skip is not None:
            continue
        if block.file is not None:
            if block.serve or block.certificate:
                raise WalkError(f"{block.where()}: a file block is written, not run")
            continue
        if block.info not in ("sh", "bash", "shell"):
            raise WalkError(
                f"{block.where()}: a ```{block.info or '(no language)'} block the walk cannot "
                "classify: make it ```sh, or annotate it (<!-- readme-test: file NAME --> or "
                "<!-- readme-test: skip: REASON -->)"
            )
        cmds = commands(block)
        if not cmds:
            raise WalkError(f"{block.where()}: a ```sh block with no command")
        serves = [c for c in cmds if SERVE.search(c.text)]
        if serves and not block.serve:
            raise WalkError(
                f"README.md:{serves[0].line}: `{serves[0].text}` runs until stopped: annotate "
                "its block with <!-- readme-test: serve -->"
            )
        if block.serve and not serves:
            raise WalkError(f"{block.where()}: annotated serve, but no command starts a server")


def make_certificate(cwd: Path, cert: str, key: str) -> None:
    """A self-signed certificate for localhost, as a reader trying TLS out would make."""
    if (cwd / cert).exists() and (cwd / key).exists():
        return
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", key, "-out", cert,
        ],
        cwd=cwd, check=True, capture_output=True, timeout=60,
    )


def copy_checkout(dest: Path) -> None:
    """The checkout's tracked and unignored files (what a clone has, plus local edits)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        src = ROOT / name
        if not src.exists():  # deleted in the working tree, not yet committed
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return True
        return False


class Server:
    """A README command that serves until stopped, in its own process group (like a
    terminal's foreground job, so Ctrl-C reaches `cargo run` and the spate it runs)."""

    def __init__(self, command: Command, script: str, cwd: Path, env: dict[str, str], log: list[str]):
        self.command = command
        self.log = log
        self.lines: list[str] = []
        self._ready = threading.Event()
        log.append(f"$ {command.text}    # in the background")
        self.proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            if READY in line:
                self._ready.set()

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.1):
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise WalkError(
                    f"README.md:{self.command.line}: `{self.command.text}` exited with "
                    f"{self.proc.returncode} before it was ready\n" + self.tail()
                )
            if time.monotonic() > deadline:
                raise WalkError(
                    f"README.md:{self.command.line}: `{self.command.text}` logged no "
                    f"'{READY}' within {timeout_s:.0f}s\n" + self.tail()
                )

    def stop(self) -> None:
        """Ctrl-C, as a reader stops it; it must exit 0 with no ERROR line logged."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                raise WalkError(
                    f"README.md:{self.command.line}: the server did not stop within "
                    f"{STOP_TIMEOUT_S:.0f}s of Ctrl-C\n" + self.tail()
                )
        self._reader.join(10)
        self.log.extend(f"    | {line}" for line in self.lines)
        if self.proc.returncode != 0:
            raise WalkError(
                f"README.md:{self.command.line}: the server exited with {self.proc.returncode} "
                "on Ctrl-C\n" + self.tail()
            )
        errors = [line for line in self.lines if ERROR_LINE.search(line)]
        if errors:
            raise WalkError(
                f"README.md:{self.command.line}: the server logged errors:\n" + "\n".join(errors)
            )

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def tail(self, n: int = 40) -> str:
        return "--- server output ---\n" + "\n".join(self.lines[-n:])


@dataclass
class Walk:
    """One walk of a README in a fresh directory; `log` is the transcript."""

    readme: Path
    workdir: Path
    log: list[str] = field(default_factory=list)
    server: Server | None = None
    # Ports that must be free before a server starts.
    ports: tuple[int, ...] = README_PORTS

    def env(self) -> dict[str, str]:
        install_root = self.workdir / ".readme-walk" / "install"
        guard = self.workdir / ".readme-walk" / "guard"
        guard.mkdir(parents=True, exist_ok=True)
        # Until `cargo install` has put spate under install_root, `spate` is this script.
        stub = guard / "spate"
        stub.write_text(
            "#!/bin/sh\necho 'readme walk: the README runs spate before saying how to install "
            "it' >&2\nexit 127\n"
        )
        stub.chmod(0o755)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPATE_")}
        env["PATH"] = f"{install_root / 'bin'}:{guard}:{os.environ['PATH']}"
        env["CARGO_INSTALL_ROOT"] = str(install_root)
        env["CARGO_TARGET_DIR"] = str(target_dir())
        env["CARGO_TERM_COLOR"] = "never"
        # `spate profile` writes under XDG_CONFIG_HOME: keep it in the walk's directory, away
        # from the machine's own profiles.
        env["XDG_CONFIG_HOME"] = str(self.workdir / ".readme-walk" / "config")
        # The copy has no .git; build.rs takes the commit from here instead.
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        if commit:
            env["SPATE_GIT_COMMIT"] = commit
        return env

    def run(self) -> None:
        blocks = parse_blocks(self.readme.read_text())
        classify(blocks)
        env = self.env()
        try:
            for block in blocks:
                self.block(block, env)
            if self.server is not None:
                server, self.server = self.server, None
                server.stop()
        finally:
            if self.server is not None:
                self.server.kill()

    def block(self, block: Block, env: dict[str, str]) -> None:
        self.log.append(f"--- {block.where()} ```{block.info}")
        if block.skip is not None:
            self.log.append(f"    skipped: {block.skip}")
            return
        if block.file is not None:
            path = self.workdir / block.file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.text)
            self.log.append(f"    wrote {block.file}")
            return
        if block.certificate is not None:
            make_certificate(self.workdir, *block.certificate)
            self.log.append(f"    made {' and '.join(block.certificate)} (self-signed, openssl)")
        for command in commands(block):
            if SERVE.search(command.text):
                if self.server is not None:
                    server, self.server = self.server, None
                    server.stop()
                busy = [p for p in self.ports if port_in_use(p)]
                if busy:
                    raise WalkError(
                        f"README.md:{command.line}: ports {busy} are in use: the README's "
                        f"servers listen on {self.ports}"
                    )
                self.server = Server(command, self.script(command, save=False), self.workdir, env, self.log)
                timeout = BUILD_TIMEOUT_S if command.text.startswith("cargo ") else SERVE_READY_TIMEOUT_S
                self.server.wait_ready(timeout)
            else:
                self.shell(command, env)

    def shell(self, command: Command, env: dict[str, str]) -> None:
        self.log.append(f"$ {command.text}")
        timeout = BUILD_TIMEOUT_S if command.text.startswith("cargo ") else COMMAND_TIMEOUT_S
        try:
            proc = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", self.script(command, save=True)],
                cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:
            raise WalkError(
                f"README.md:{command.line}: `{command.text}` still ran after {timeout:.0f}s\n"
                + _text(e.stdout) + _text(e.stderr) + self.server_tail()
            ) from None
        out = _text(proc.stdout) + _text(proc.stderr)
        self.log.extend(f"    {line}" for line in out.splitlines())
        if proc.returncode != 0:
            raise WalkError(
                f"README.md:{command.line}: `{command.text}` exited with {proc.returncode}\n"
                + out + self.server_tail()
            )

    def script(self, command: Command, save: bool) -> str:
        """The command as a reader's terminal runs it: in the directory and with the exported
        variables the commands before it left (a `cd` or `export` carries over)."""
        state = shlex.quote(str(self.workdir / ".readme-walk" / "shell"))
        prelude = f'if [ -f {state}/env ]; then . {state}/env; cd "$(cat {state}/cwd)"; fi\n'
        if not save:
            return prelude + command.text + "\n"
        return (
            prelude + command.text + "\n"
            + f"mkdir -p {state}; export -p >{state}/env; pwd >{state}/cwd\n"
        )

    def server_tail(self) -> str:
        return "\n" + self.server.tail() if self.server is not None else ""


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache" / "spate" / "target")


def walk(readme: Path = ROOT / "README.md") -> list[str]:
    """Walks `readme` in a fresh copy of the checkout; returns the transcript.

    The copy is made at the same place each time (emptied first), under the build cache: cargo
    keys a build by where its workspace is, so a copy at a new path would rebuild Spate."""
    workdir = target_dir() / "readme-walk" / "spate"
    shutil.rmtree(workdir.parent, ignore_errors=True)
    copy_checkout(workdir)
    w = Walk(readme=readme, workdir=workdir)
    try:
        w.run()
    except WalkError as e:
        raise WalkError(
            f"{e}\n--- transcript (the walk's directory {workdir} is kept) ---\n"
            + "\n".join(w.log[-80:])
        ) from None
    shutil.rmtree(workdir.parent, ignore_errors=True)
    return w.log


if __name__ == "__main__":
    print("\n".join(walk()))
