"""README.md, walked top to bottom (walk.py), and the walker's own rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import walk
from walk import WalkError, classify, commands, parse_blocks


def test_readme_runs_top_to_bottom():
    transcript = walk.walk()
    ran = [line for line in transcript if line.startswith("$ ")]
    # The README's own commands, in its order: installed before `spate` is used.
    first_spate = next(i for i, line in enumerate(ran) if re.match(r"\$ spate\b", line))
    assert any(line.startswith("$ cargo install") for line in ran[:first_spate]), ran
    assert any("serve" in line and "background" in line for line in ran), ran
    print("\n".join(transcript))


def blocks(markdown: str):
    found = parse_blocks(markdown)
    classify(found)
    return found


def test_sh_blocks_split_into_commands_with_continuations_joined():
    (b,) = blocks("```sh\n# a comment\nspate topic create a \\\n  --partitions 2\n\necho ok\n```\n")
    assert [(c.line, c.text) for c in commands(b)] == [
        (3, "spate topic create a --partitions 2"),
        (6, "echo ok"),
    ]


def test_annotations_attach_to_the_next_block():
    (f, s, k) = blocks(
        "<!-- readme-test: file order.avsc -->\n```json\n{}\n```\n"
        "<!-- readme-test: serve; certificate a.pem a.key -->\n```sh\nspate serve --x\nspate acl list\n```\n"
        "<!-- readme-test: skip: it would recurse; twice -->\n```sh\n./scripts/test\n```\n"
    )
    assert (f.file, f.text) == ("order.avsc", "{}\n")
    assert s.serve and s.certificate == ("a.pem", "a.key")
    assert k.skip == "it would recurse; twice"


@pytest.mark.parametrize(
    "markdown, message",
    [
        ("```toml\na = 1\n```\n", "cannot classify"),
        ("```\nplain\n```\n", "no language"),
        ("```sh\ncargo run --release --bin spate -- serve\n```\n", "runs until stopped"),
        ("```sh\nspate serve --data-dir x\n```\n", "runs until stopped"),
        ("```sh\nsudo -u spate /usr/bin/spate serve\n```\n", "runs until stopped"),
        ("<!-- readme-test: serve -->\n```sh\nspate topic list\n```\n", "no command starts"),
        ("<!-- readme-test: sometimes -->\n```sh\necho\n```\n", "unknown readme-test directive"),
        ("<!-- readme-test: skip: -->\n```sh\necho\n```\n", "unknown readme-test directive"),
        ("<!-- readme-test: serve -->\n\n```sh\nspate serve\n```\n", "right before"),
        ("```sh\necho \\\n```\n", "line continuation"),
        ("```sh\necho never closed\n", "never closed"),
    ],
)
def test_blocks_the_walk_cannot_run_fail_loudly(markdown: str, message: str):
    with pytest.raises(WalkError, match=message):
        blocks(markdown)


def test_a_failing_command_fails_the_walk(tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text("```sh\necho fine\nfalse\necho never\n```\n")
    w = walk.Walk(readme=readme, workdir=tmp_path)
    with pytest.raises(WalkError, match=r"README.md:3: `false` exited with 1"):
        w.run()
    assert "$ echo never" not in w.log


def test_spate_before_its_install_fails_the_walk(tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text("```sh\nspate --version\n```\n")
    w = walk.Walk(readme=readme, workdir=tmp_path)
    with pytest.raises(WalkError, match="before saying how to install it"):
        w.run()


def test_file_blocks_are_written_where_the_commands_run(tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text(
        '<!-- readme-test: file order.avsc -->\n```json\n{"type": "string"}\n```\n'
        "```sh\ngrep -q string order.avsc\n```\n"
    )
    walk.Walk(readme=readme, workdir=tmp_path).run()
    assert (tmp_path / "order.avsc").read_text() == '{"type": "string"}\n'


def test_cd_and_export_carry_over_as_in_a_terminal(tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "```sh\nmkdir -p sub && cd sub\nexport GREETING=hello\n```\n"
        '```sh\necho "$GREETING" > where.txt\n```\n'
    )
    walk.Walk(readme=readme, workdir=tmp_path).run()
    assert (tmp_path / "sub" / "where.txt").read_text() == "hello\n"


def fake_spate(workdir: Path, body: str) -> None:
    """A `spate` where `cargo install` would put it, running `body` (sh)."""
    bin_dir = workdir / ".readme-walk" / "install" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "spate").write_text("#!/bin/sh\n" + body)
    (bin_dir / "spate").chmod(0o755)


# Logs the ready line, then exits 0 on Ctrl-C, as spate does; other commands print their name.
FAKE_SERVE = """
if [ "$1" = serve ]; then
    trap 'echo "INFO spate_server: stopped"; exit 0' INT
    echo "2026-12-06T00:00:00Z  INFO spate_server: spate is ready kafka_addr=0.0.0.0:9092"
    while :; do sleep 0.05; done
fi
echo "ran spate $*"
"""


def test_serve_blocks_run_in_the_background_until_the_walk_ends(tmp_path: Path):
    fake_spate(tmp_path, FAKE_SERVE)
    readme = tmp_path / "README.md"
    readme.write_text(
        "<!-- readme-test: serve -->\n```sh\nspate serve\nspate topic list\n```\n"
        "<!-- readme-test: serve -->\n```sh\nspate serve --authorizer acl\n```\n"
        "```sh\nspate acl list\n```\n"
    )
    w = walk.Walk(readme=readme, workdir=tmp_path, ports=())
    w.run()
    assert [line for line in w.log if line.startswith(("$", "    ran"))] == [
        "$ spate serve    # in the background",
        "$ spate topic list",
        "    ran spate topic list",
        "$ spate serve --authorizer acl    # in the background",
        "$ spate acl list",
        "    ran spate acl list",
    ]
    assert sum("spate_server: stopped" in line for line in w.log) == 2


@pytest.mark.parametrize(
    "body, message",
    [
        ('echo "ERROR spate: no" >&2; exit 3\n', "exited with 3 before it was ready"),
        (
            FAKE_SERVE.replace("exit 0' INT", "exit 0' INT\n    echo '2026-12-06T00:00:01Z ERROR x: bad'"),
            "the server logged errors",
        ),
        (FAKE_SERVE.replace("exit 0' INT", "exit 1' INT"), "exited with 1 on Ctrl-C"),
    ],
)
def test_a_server_that_fails_fails_the_walk(tmp_path: Path, body: str, message: str):
    fake_spate(tmp_path, body)
    readme = tmp_path / "README.md"
    readme.write_text("<!-- readme-test: serve -->\n```sh\nspate serve\n```\n")
    with pytest.raises(WalkError, match=message):
        walk.Walk(readme=readme, workdir=tmp_path, ports=()).run()
