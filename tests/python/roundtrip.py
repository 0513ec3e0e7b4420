"""The records every client round-trips, and the checks on what comes back and what was stored."""

from __future__ import annotations

from dataclasses import dataclass

import kafka_wire
from helpers import MIB, compressible_bytes, incompressible_bytes

ORDERED_COUNT = 300


@dataclass(frozen=True)
class Rec:
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()

    def describe(self) -> str:
        def short(b: bytes | None) -> str:
            if b is None:
                return "NULL"
            return repr(b) if len(b) <= 40 else f"<{len(b)} bytes>"

        return f"key={short(self.key)} value={short(self.value)} headers={list(self.headers)}"


BIG_RANDOM_KEY = b"big-random"
BIG_COMPRESSIBLE_KEY = b"big-compressible"


def standard_records(null_header_values: bool = True) -> list[Rec]:
    """Keys, no key, headers (repeated names, binary, empty, null), tombstones, empty values,
    1 MiB values (one compressible, one not), and a long run whose order must survive."""
    recs = [
        Rec(b"plain", b"hello"),
        Rec(None, b"no key at all"),
        Rec(b"tombstone", None),
        Rec(b"empty-value", b""),
        Rec(b"", b"empty key"),
        Rec(None, None),
        Rec(
            b"with-headers",
            b"headers ride along",
            (("trace-id", b"abc123"), ("binary", bytes(range(256))), ("dup", b"1"), ("dup", b"2"),
             ("empty", b"")),
        ),
        Rec(BIG_COMPRESSIBLE_KEY, compressible_bytes(MIB)),
        Rec(BIG_RANDOM_KEY, incompressible_bytes(MIB)),
    ]
    if null_header_values:
        recs.append(Rec(b"null-header", b"v", (("nothing", None),)))
    recs += [
        Rec(f"k{i % 7}".encode(), f"seq-{i:05d}".encode(), (("seq", str(i).encode()),))
        for i in range(ORDERED_COUNT)
    ]
    recs.append(Rec(b"last", b"the end"))
    return recs


def normalize_headers(headers: object) -> tuple[tuple[str, bytes | None], ...]:
    if not headers:
        return ()
    out = []
    for name, value in headers:  # type: ignore[union-attr]
        if isinstance(name, bytes):
            name = name.decode()
        if isinstance(value, str):
            value = value.encode()
        out.append((name, value))
    return tuple(out)


def check_round_trip(sent: list[Rec], got: list[tuple[int, Rec]], first_offset: int = 0) -> None:
    """Everything sent came back once, in order, byte for byte, at consecutive offsets."""
    assert len(got) == len(sent), f"sent {len(sent)} records, consumed {len(got)}"
    offsets = [o for o, _ in got]
    assert offsets == list(range(first_offset, first_offset + len(sent))), (
        f"offsets are not consecutive from {first_offset}: {offsets[:20]}..."
    )
    for i, (want, (offset, have)) in enumerate(zip(sent, got)):
        assert have.key == want.key, f"record {i} (offset {offset}): key {have.describe()} != {want.describe()}"
        assert have.value == want.value, (
            f"record {i} (offset {offset}): value {have.describe()} != {want.describe()}"
        )
        assert have.headers == want.headers, (
            f"record {i} (offset {offset}): headers {have.describe()} != {want.describe()}"
        )


# A batch this large (as stored) is worth compressing unless its values are random bytes.
COMPRESSIBLE_BATCH_BYTES = 4096


def check_stored_codec(
    kafka_addr: str,
    topic: str,
    codec: str,
    high_watermark: int,
    incompressible: set[int] = frozenset(),  # type: ignore[assignment]
) -> list[kafka_wire.Batch]:
    """The broker stored (and serves) batches with the codec the client used.

    Clients send a batch uncompressed when compressing would not make it smaller (librdkafka
    does for tiny batches and random data). So a batch may be stored uncompressed only if it is
    small or holds an offset in `incompressible` (random values); every other batch must carry
    the codec. With codec "none", no batch is compressed.
    """
    want = kafka_wire.CODEC_BY_NAME[codec]
    batches = kafka_wire.fetch_all_batches(kafka_addr, topic, 0, high_watermark)
    assert batches, "no batches fetched"
    assert batches[0].base_offset == 0
    for b in batches:
        assert b.magic == 2
        if len(b.raw) < 256 << 10:
            assert b.crc_ok(), f"batch at offset {b.base_offset} has a bad CRC-32C"
        random_inside = any(b.base_offset <= o <= b.last_offset for o in incompressible)
        may_skip = random_inside or len(b.raw) < COMPRESSIBLE_BATCH_BYTES
        allowed = {want, kafka_wire.CODEC_NONE} if may_skip else {want}
        assert b.codec in allowed, (
            f"batch at offsets {b.base_offset}..{b.last_offset} ({len(b.raw)} bytes) is stored "
            f"with codec {b.codec}, want {sorted(allowed)} ({codec})"
        )
    if want != kafka_wire.CODEC_NONE:
        assert any(b.codec == want for b in batches), f"no batch is stored with {codec}"
    covered = sum(b.last_offset_delta + 1 for b in batches)
    assert covered == high_watermark, f"batches cover {covered} offsets, high watermark {high_watermark}"
    return batches
