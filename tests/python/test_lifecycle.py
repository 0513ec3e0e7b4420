"""The life of a `spate serve` process: who may open a data directory, and how it stops."""

from __future__ import annotations

import subprocess

from confluent_kafka import TopicPartition

from conftest import spate_binary
from helpers import consume_from, consumer, create_topic, produce_all, producer, unique


def values(bootstrap: str, topic: str, count: int) -> list[bytes]:
    return [m.value() for m in consume_from(consumer(bootstrap), [TopicPartition(topic, 0, 0)], count)]


def test_a_second_serve_on_the_same_data_dir_is_refused_and_names_the_holder(spate):
    topic = unique("lock")
    create_topic(spate.bootstrap, topic)
    produce_all(producer(spate.bootstrap, acks="all"), topic, [{"value": b"before"}])

    second = [
        str(spate_binary()), "serve", "--data-dir", str(spate.data_dir),
        "--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        "--registry-listen", "127.0.0.1:0", "--connect-listen", "off",
    ]
    run = subprocess.run(
        second, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0, f"a second serve opened a data directory in use:\n{output}"
    assert f"in use by process {spate.proc.pid}" in output, output
    assert ".lock" in output, output
    assert output.count("in use by process") == 1, f"the reason is printed once:\n{output}"

    # The first one never noticed: it keeps serving what it had and takes more.
    produce_all(producer(spate.bootstrap, acks="all"), topic, [{"value": b"after"}])
    assert values(spate.bootstrap, topic, 2) == [b"before", b"after"]

    # Once it has stopped, the directory is free again, with everything in it.
    spate.stop()
    spate.start()
    assert values(spate.bootstrap, topic, 2) == [b"before", b"after"]
