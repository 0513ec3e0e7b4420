"""A few Kafka requests spoken over a raw socket, for what real clients cannot do.

Real clients never send garbage, never ask for ApiVersions v99 and never show how a batch was
stored. These helpers encode just enough of the protocol (by the Kafka spec, with `struct`) to
send such requests and read the answers. Nothing here is a client: one request at a time.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

API_PRODUCE = 0
API_FETCH = 1
API_METADATA = 3
API_OFFSET_FETCH = 9
API_API_VERSIONS = 18
API_DESCRIBE_PRODUCERS = 61
API_DESCRIBE_TRANSACTIONS = 65
API_LIST_TRANSACTIONS = 66

ERROR_NONE = 0
ERROR_CORRUPT_MESSAGE = 2
ERROR_UNSUPPORTED_VERSION = 35
ERROR_UNSTABLE_OFFSET_COMMIT = 88
ERROR_TRANSACTIONAL_ID_NOT_FOUND = 105

CODEC_NONE = 0
CODEC_GZIP = 1
CODEC_SNAPPY = 2
CODEC_LZ4 = 3
CODEC_ZSTD = 4
CODEC_BY_NAME = {
    "none": CODEC_NONE,
    "gzip": CODEC_GZIP,
    "snappy": CODEC_SNAPPY,
    "lz4": CODEC_LZ4,
    "zstd": CODEC_ZSTD,
}


class ConnectionClosed(Exception):
    """The broker closed the connection (EOF or reset)."""


# --- encoding -----------------------------------------------------------------------------------


def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def string(v: str | None) -> bytes:
    if v is None:
        return i16(-1)
    raw = v.encode()
    return i16(len(raw)) + raw


def kbytes(v: bytes | None) -> bytes:
    if v is None:
        return i32(-1)
    return i32(len(v)) + v


def array(items: list[bytes]) -> bytes:
    return i32(len(items)) + b"".join(items)


def uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(v: int) -> bytes:
    """Zig-zag signed varint (record fields)."""
    return uvarint((v << 1) ^ (v >> 63))


def compact_string(v: str | None) -> bytes:
    if v is None:
        return uvarint(0)
    raw = v.encode()
    return uvarint(len(raw) + 1) + raw


def compact_array(items: list[bytes]) -> bytes:
    return uvarint(len(items) + 1) + b"".join(items)


TAGS_NONE = uvarint(0)  # an empty tagged-fields section (flexible versions)


def request_header_v1(api_key: int, version: int, correlation_id: int, client_id: str) -> bytes:
    return i16(api_key) + i16(version) + i32(correlation_id) + string(client_id)


def request_header_v2(api_key: int, version: int, correlation_id: int, client_id: str) -> bytes:
    return request_header_v1(api_key, version, correlation_id, client_id) + uvarint(0)


def frame(payload: bytes) -> bytes:
    return i32(len(payload)) + payload


# --- CRC-32C (Castagnoli), for building record batches ------------------------------------------


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC32C
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# --- record batches (magic 2) and old message sets (magic 1) ------------------------------------


def record_batch(
    records: list[tuple[bytes | None, bytes | None]],
    base_timestamp_ms: int | None = None,
    corrupt_crc: bool = False,
) -> bytes:
    """An uncompressed RecordBatch v2 holding (key, value) records, base offset 0."""
    ts = int(time.time() * 1000) if base_timestamp_ms is None else base_timestamp_ms
    body = bytearray()
    for delta, (key, value) in enumerate(records):
        rec = bytearray()
        rec += i8(0)  # attributes
        rec += varint(0)  # timestamp delta
        rec += varint(delta)  # offset delta
        rec += varint(-1) if key is None else varint(len(key)) + key
        rec += varint(-1) if value is None else varint(len(value)) + value
        rec += varint(0)  # headers
        body += varint(len(rec)) + rec
    after_crc = (
        i16(0)  # attributes: no compression, CreateTime, not transactional
        + i32(len(records) - 1)  # last offset delta
        + i64(ts)
        + i64(ts)
        + i64(-1)  # producer id
        + i16(-1)  # producer epoch
        + i32(-1)  # base sequence
        + i32(len(records))
        + bytes(body)
    )
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    after_length = i32(0) + i8(2) + u32(crc) + after_crc  # leader epoch, magic, crc
    return i64(0) + i32(len(after_length)) + after_length


def message_set_v1(key: bytes | None, value: bytes | None) -> bytes:
    """A one-message MessageSet in the old magic 1 format (dropped by Kafka 4)."""
    import zlib

    after_crc = i8(1) + i8(0) + i64(int(time.time() * 1000)) + kbytes(key) + kbytes(value)
    message = u32(zlib.crc32(after_crc)) + after_crc
    return i64(0) + i32(len(message)) + message


# --- decoding -----------------------------------------------------------------------------------


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"truncated response: need {n} bytes at {self.pos} of {len(self.data)}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def _unpack(self, fmt: str, n: int) -> int:
        return struct.unpack(fmt, self.take(n))[0]

    def i8(self) -> int:
        return self._unpack(">b", 1)

    def i16(self) -> int:
        return self._unpack(">h", 2)

    def i32(self) -> int:
        return self._unpack(">i", 4)

    def u32(self) -> int:
        return self._unpack(">I", 4)

    def i64(self) -> int:
        return self._unpack(">q", 8)

    def uvarint(self) -> int:
        shift = 0
        out = 0
        while True:
            b = self.take(1)[0]
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def varint(self) -> int:
        v = self.uvarint()
        return (v >> 1) ^ -(v & 1)

    def string(self) -> str | None:
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def kbytes(self) -> bytes | None:
        n = self.i32()
        return None if n < 0 else self.take(n)

    def compact_string(self) -> str | None:
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def compact_array_len(self) -> int:
        """Number of elements of a compact array; -1 for a null array."""
        return self.uvarint() - 1

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.take(self.uvarint())

    def remaining(self) -> int:
        return len(self.data) - self.pos


@dataclass
class ApiVersions:
    error_code: int
    versions: dict[int, tuple[int, int]]
    throttle_time_ms: int | None = None


def parse_api_versions_v0(body: Reader) -> ApiVersions:
    error_code = body.i16()
    versions = {}
    for _ in range(body.i32()):
        key, lo, hi = body.i16(), body.i16(), body.i16()
        versions[key] = (lo, hi)
    return ApiVersions(error_code, versions)


def parse_api_versions_v3(body: Reader) -> ApiVersions:
    error_code = body.i16()
    versions = {}
    for _ in range(body.uvarint() - 1):
        key, lo, hi = body.i16(), body.i16(), body.i16()
        body.skip_tagged_fields()
        versions[key] = (lo, hi)
    throttle = body.i32()
    body.skip_tagged_fields()
    return ApiVersions(error_code, versions, throttle)


@dataclass
class TransactionDescription:
    """One entry of a DescribeTransactions response."""

    error_code: int
    transactional_id: str
    state: str
    timeout_ms: int
    start_time_ms: int
    producer_id: int
    producer_epoch: int
    partitions: dict[str, list[int]]


@dataclass
class TransactionListing:
    """One entry of a ListTransactions response."""

    transactional_id: str
    producer_id: int
    state: str


@dataclass
class ListedTransactions:
    error_code: int
    unknown_state_filters: list[str]
    transactions: list[TransactionListing]


@dataclass
class ActiveProducer:
    """One active producer of a partition, from DescribeProducers."""

    producer_id: int
    producer_epoch: int
    last_sequence: int
    last_timestamp_ms: int
    coordinator_epoch: int
    current_txn_start_offset: int


@dataclass
class PartitionProducers:
    error_code: int
    error_message: str | None
    producers: list[ActiveProducer]


@dataclass
class Batch:
    base_offset: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    record_count: int
    raw: bytes = field(repr=False)

    @property
    def codec(self) -> int:
        return self.attributes & 0x7

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    def crc_ok(self) -> bool:
        return crc32c(self.raw[21:]) == self.crc


def parse_batches(records: bytes) -> list[Batch]:
    """Splits Fetch records into batches; a trailing partial batch is ignored (as clients do)."""
    batches = []
    pos = 0
    while len(records) - pos >= 12:
        base_offset, length = struct.unpack_from(">qi", records, pos)
        end = pos + 12 + length
        if end > len(records):
            break
        raw = records[pos:end]
        magic = raw[16]
        if magic != 2:
            raise AssertionError(f"stored batch at offset {base_offset} has magic {magic}, want 2")
        crc, attributes, last_delta = struct.unpack_from(">Ihi", raw, 17)
        (count,) = struct.unpack_from(">i", raw, 57)
        batches.append(Batch(base_offset, magic, crc, attributes, last_delta, count, raw))
        pos = end
    return batches


# --- a connection -------------------------------------------------------------------------------


def split_addr(addr: str) -> tuple[str, int]:
    host, port = addr.rsplit(":", 1)
    return host, int(port)


class RawConnection:
    """One TCP connection to the broker; requests are answered in order."""

    def __init__(self, addr: str, timeout_s: float = 10.0):
        self.sock = socket.create_connection(split_addr(addr), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.correlation_id = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def next_correlation_id(self) -> int:
        self.correlation_id += 1
        return self.correlation_id

    def send_request(self, api_key: int, version: int, body: bytes, flexible: bool = False) -> int:
        cid = self.next_correlation_id()
        header = (request_header_v2 if flexible else request_header_v1)(
            api_key, version, cid, "spate-tests-raw"
        )
        self.send_raw(frame(header + body))
        return cid

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except (ConnectionResetError, BrokenPipeError) as e:
                raise ConnectionClosed(str(e)) from e
            if not chunk:
                raise ConnectionClosed(f"EOF after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def recv_frame(self, timeout_s: float = 10.0) -> bytes:
        """The next response frame; socket.timeout if none within timeout_s."""
        self.sock.settimeout(timeout_s)
        (size,) = struct.unpack(">i", self._recv_exact(4))
        if size < 4 or size > 200 << 20:
            raise AssertionError(f"response frame size {size} is not plausible")
        return self._recv_exact(size)

    def recv_response(
        self, correlation_id: int, flexible_header: bool = False, timeout_s: float = 10.0
    ) -> Reader:
        r = Reader(self.recv_frame(timeout_s))
        got = r.i32()
        if got != correlation_id:
            raise AssertionError(f"response correlation id {got}, want {correlation_id}")
        if flexible_header:
            r.skip_tagged_fields()
        return r

    def wait_closed(self, timeout_s: float = 10.0) -> bytes:
        """Reads until the broker closes the connection; returns whatever it sent first.

        Raises socket.timeout if the connection is still open after timeout_s.
        """
        self.sock.settimeout(timeout_s)
        received = bytearray()
        deadline = time.monotonic() + timeout_s
        while True:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return bytes(received)
            if not chunk:
                return bytes(received)
            received += chunk

    # --- typed requests ------------------------------------------------------------------------

    def api_versions(self, version: int = 0) -> ApiVersions:
        if version >= 3:
            body = compact_string("spate-tests") + compact_string("1.0") + uvarint(0)
            cid = self.send_request(API_API_VERSIONS, version, body, flexible=True)
            # ApiVersions answers with response header v0 whatever the version (KIP-511).
            return parse_api_versions_v3(self.recv_response(cid))
        cid = self.send_request(API_API_VERSIONS, version, b"")
        return parse_api_versions_v0(self.recv_response(cid))

    def fetch_v4(
        self,
        topic: str,
        partition: int,
        offset: int,
        max_wait_ms: int = 0,
        min_bytes: int = 1,
        max_bytes: int = 64 << 20,
        partition_max_bytes: int = 64 << 20,
        timeout_s: float = 10.0,
    ) -> tuple[int, int, bytes]:
        """Fetch v4; returns (error_code, high_watermark, records)."""
        cid = self.send_fetch_v4(
            topic, partition, offset, max_wait_ms, min_bytes, max_bytes, partition_max_bytes
        )
        return self.recv_fetch_v4(cid, timeout_s)

    def send_fetch_v4(
        self,
        topic: str,
        partition: int,
        offset: int,
        max_wait_ms: int,
        min_bytes: int = 1,
        max_bytes: int = 64 << 20,
        partition_max_bytes: int = 64 << 20,
    ) -> int:
        body = (
            i32(-1)  # replica id
            + i32(max_wait_ms)
            + i32(min_bytes)
            + i32(max_bytes)
            + i8(0)  # isolation level: read uncommitted
            + array([string(topic) + array([i32(partition) + i64(offset) + i32(partition_max_bytes)])])
        )
        return self.send_request(API_FETCH, 4, body)

    def recv_fetch_v4(self, correlation_id: int, timeout_s: float = 10.0) -> tuple[int, int, bytes]:
        r = self.recv_response(correlation_id, timeout_s=timeout_s)
        r.i32()  # throttle
        topics = r.i32()
        assert topics == 1, f"fetch response has {topics} topics, want 1"
        r.string()
        partitions = r.i32()
        assert partitions == 1, f"fetch response has {partitions} partitions, want 1"
        r.i32()  # partition index
        error_code = r.i16()
        high_watermark = r.i64()
        r.i64()  # last stable offset
        aborted = r.i32()
        for _ in range(max(aborted, 0)):
            r.i64()
            r.i64()
        records = r.kbytes() or b""
        return error_code, high_watermark, records

    def produce(
        self, version: int, topic: str, partition: int, records: bytes, acks: int = -1
    ) -> tuple[int, int]:
        """Produce v3..v8 (v2 has no transactional id); returns (error_code, base_offset)."""
        body = b""
        if version >= 3:
            body += string(None)  # transactional id
        body += i16(acks) + i32(30_000)
        body += array([string(topic) + array([i32(partition) + kbytes(records)])])
        cid = self.send_request(API_PRODUCE, version, body)
        r = self.recv_response(cid)
        assert r.i32() == 1, "produce response should have one topic"
        r.string()
        assert r.i32() == 1, "produce response should have one partition"
        r.i32()
        error_code = r.i16()
        base_offset = r.i64()
        return error_code, base_offset


    def offset_fetch_v7(
        self, group: str, topic: str, partitions: list[int], require_stable: bool
    ) -> dict[int, tuple[int, int]]:
        """OffsetFetch v7 (flexible; KIP-447's require_stable); returns partition → (committed
        offset, error code)."""
        body = (
            compact_string(group)
            + compact_array([compact_string(topic) + compact_array([i32(p) for p in partitions]) + TAGS_NONE])
            + i8(1 if require_stable else 0)
            + TAGS_NONE
        )
        cid = self.send_request(API_OFFSET_FETCH, 7, body, flexible=True)
        r = self.recv_response(cid, flexible_header=True)
        r.i32()  # throttle
        out: dict[int, tuple[int, int]] = {}
        for _ in range(max(r.compact_array_len(), 0)):
            r.compact_string()  # topic
            for _ in range(max(r.compact_array_len(), 0)):
                index = r.i32()
                offset = r.i64()
                r.i32()  # committed leader epoch
                r.compact_string()  # metadata
                error_code = r.i16()
                r.skip_tagged_fields()
                out[index] = (offset, error_code)
            r.skip_tagged_fields()
        group_error = r.i16()
        assert group_error == ERROR_NONE, f"OffsetFetch for group {group} failed with error {group_error}"
        r.skip_tagged_fields()
        return out

    # --- transactions admin APIs (all flexible versions) -------------------------------------

    def describe_transactions(self, transactional_ids: list[str]) -> list[TransactionDescription]:
        """DescribeTransactions v0 (API 65)."""
        body = compact_array([compact_string(t) for t in transactional_ids]) + TAGS_NONE
        cid = self.send_request(API_DESCRIBE_TRANSACTIONS, 0, body, flexible=True)
        r = self.recv_response(cid, flexible_header=True)
        r.i32()  # throttle
        out = []
        for _ in range(r.compact_array_len()):
            error_code = r.i16()
            transactional_id = r.compact_string() or ""
            state = r.compact_string() or ""
            timeout_ms = r.i32()
            start_time_ms = r.i64()
            producer_id = r.i64()
            producer_epoch = r.i16()
            partitions: dict[str, list[int]] = {}
            for _ in range(max(r.compact_array_len(), 0)):
                topic = r.compact_string() or ""
                partitions[topic] = [r.i32() for _ in range(max(r.compact_array_len(), 0))]
                r.skip_tagged_fields()
            r.skip_tagged_fields()
            out.append(
                TransactionDescription(
                    error_code, transactional_id, state, timeout_ms, start_time_ms,
                    producer_id, producer_epoch, partitions,
                )
            )
        r.skip_tagged_fields()
        return out

    def list_transactions(
        self,
        version: int = 0,
        state_filters: list[str] | None = None,
        producer_id_filters: list[int] | None = None,
        duration_filter_ms: int = -1,
        transactional_id_pattern: str | None = None,
    ) -> ListedTransactions:
        """ListTransactions v0..v2 (API 66); v1 adds the duration filter, v2 the id pattern."""
        body = compact_array([compact_string(s) for s in state_filters or []])
        body += compact_array([i64(p) for p in producer_id_filters or []])
        if version >= 1:
            body += i64(duration_filter_ms)
        if version >= 2:
            body += compact_string(transactional_id_pattern)
        body += TAGS_NONE
        cid = self.send_request(API_LIST_TRANSACTIONS, version, body, flexible=True)
        r = self.recv_response(cid, flexible_header=True)
        r.i32()  # throttle
        error_code = r.i16()
        unknown = [r.compact_string() or "" for _ in range(max(r.compact_array_len(), 0))]
        listings = []
        for _ in range(max(r.compact_array_len(), 0)):
            transactional_id = r.compact_string() or ""
            producer_id = r.i64()
            state = r.compact_string() or ""
            r.skip_tagged_fields()
            listings.append(TransactionListing(transactional_id, producer_id, state))
        r.skip_tagged_fields()
        return ListedTransactions(error_code, unknown, listings)

    def describe_producers(self, topic: str, partitions: list[int]) -> dict[int, PartitionProducers]:
        """DescribeProducers v0 (API 61) for partitions of one topic."""
        body = (
            compact_array([compact_string(topic) + compact_array([i32(p) for p in partitions]) + TAGS_NONE])
            + TAGS_NONE
        )
        cid = self.send_request(API_DESCRIBE_PRODUCERS, 0, body, flexible=True)
        r = self.recv_response(cid, flexible_header=True)
        r.i32()  # throttle
        out: dict[int, PartitionProducers] = {}
        for _ in range(max(r.compact_array_len(), 0)):
            r.compact_string()  # topic
            for _ in range(max(r.compact_array_len(), 0)):
                index = r.i32()
                error_code = r.i16()
                error_message = r.compact_string()
                producers = []
                for _ in range(max(r.compact_array_len(), 0)):
                    producers.append(
                        ActiveProducer(r.i64(), r.i32(), r.i32(), r.i64(), r.i32(), r.i64())
                    )
                    r.skip_tagged_fields()
                r.skip_tagged_fields()
                out[index] = PartitionProducers(error_code, error_message, producers)
            r.skip_tagged_fields()
        r.skip_tagged_fields()
        return out


def fetch_all_batches(addr: str, topic: str, partition: int, high_watermark: int) -> list[Batch]:
    """Every stored batch of a partition up to high_watermark, as the broker serves them."""
    batches: list[Batch] = []
    offset = 0
    with RawConnection(addr) as conn:
        while offset < high_watermark:
            error_code, _, records = conn.fetch_v4(topic, partition, offset)
            assert error_code == ERROR_NONE, f"fetch at offset {offset} failed with error {error_code}"
            got = [b for b in parse_batches(records) if b.last_offset >= offset]
            assert got, f"fetch at offset {offset} (high watermark {high_watermark}) returned no batch"
            batches.extend(got)
            offset = got[-1].last_offset + 1
    return batches
