#!/usr/bin/env python3
"""Nexmark event generator: people, auctions and bids into Kafka topics and/or files.

The model follows the Nexmark generator of the Flink Nexmark project (github.com/nexmark/nexmark,
`nexmark-flink/.../generator`, itself the Apache Beam generator) and RisingWave's `nexmark` crate:

* event ids 0, 1, 2, ...; event `n` is a person when `n % 50 < 1`, an auction when `< 4`, else a
  bid (proportions 1:3:46);
* event time `base + floor(n * 1e6 / rate) / 1000` ms: increasing, `rate` events per second of
  event time (a single generator, no out-of-order groups);
* person ids and auction ids start at 1000 and are dense in generation order; a bid is for a
  "hot" auction (the first of the last 100 auctions) with probability 1/2, else for one of the
  last 100 auctions plus 10 not yet created; a bidder is "hot" (the second of the last 100 people)
  with probability 3/4, else one of the 1000 most recent people plus 10 not yet created; a seller
  is hot (the first of the last 100 people) with probability 3/4;
* prices `round(10^(6u) * 100)` cents for uniform `u` (log-uniform, 1 $ .. 1 M$); an auction's
  reserve is its initial bid plus another such price; it expires `1 + U[0, 2h)` ms after it
  starts, `h` being the event time until 100 more auctions are generated;
* 5 categories (10..14), 6 states, 10 cities, names from the Nexmark lists;
* a bid's channel is one of "Google", "Facebook", "Baidu", "Apple" (each with its own URL) with
  probability 1/2, else `channel-<n>` for `n` in [0, 10000) whose URL carries
  `&channel_id=<abs(reverse_bits(n))>` 9 times in 10 (what q21 extracts); URLs are
  `https://www.nexmark.com/<a>/<b>/<c>/item.htm?query=1` (what q22 splits);
* `extra` pads each event to the Nexmark average sizes (person 200, auction 500, bid 100 bytes).

Two deliberate differences from the Flink generator: everything is deterministic from `--seed`
(Flink seeds `java.util.Random` from the clock, and draws its URLs at random per JVM), and a
bidder id gets the first person id (1000) added once (the Flink BidGenerator adds it twice, so
its bidders never match a person id; Beam and RisingWave add it once). Random letters of `extra`
are slices of a seeded pool rather than drawn one by one (they are padding; only their length
follows the model).

Determinism: events are generated in chunks of CHUNK events, each from its own RNG seeded by
(seed, chunk index), so the output does not depend on `--workers`.

Outputs (any combination):
  --bootstrap HOST:PORT  produce to topics `person`, `auction`, `bid` (JSON values, no key), as
                         fast as possible (lz4, large batches, acks=all, idempotent); partitions
                         are assigned round robin per topic, so each partition is in event time
                         order;
  --parquet DIR          DIR/person.parquet, DIR/auction.parquet, DIR/bid.parquet;
  --jsonl DIR            DIR/person.jsonl, ... (the exact Kafka values, one per line).
A manifest (`--manifest FILE`, default DIR/manifest.json when a file output is given) records the
configuration, the counts per topic and the largest event time per topic partition.

  ~/.cache/spate/venv/bin/python bench/nexmark/generate.py --events 1000000 \\
      --bootstrap 127.0.0.1:9092 --parquet /tmp/nexmark
"""

from __future__ import annotations

import argparse
import array
import calendar
import itertools
import json
import math
import multiprocessing
import os
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

TOPICS: tuple[str, ...] = ("person", "auction", "bid")
CHUNK = 10_000

# GeneratorConfig / NexmarkConfiguration defaults.
FIRST_PERSON_ID = 1000
FIRST_AUCTION_ID = 1000
FIRST_CATEGORY_ID = 10
NUM_CATEGORIES = 5
PERSON_PROPORTION = 1
AUCTION_PROPORTION = 3
BID_PROPORTION = 46
TOTAL_PROPORTION = PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION
PERSON_ID_LEAD = 10
AUCTION_ID_LEAD = 10
NUM_ACTIVE_PEOPLE = 1000
NUM_IN_FLIGHT_AUCTIONS = 100
HOT_AUCTION_RATIO = 2  # configuration.hotAuctionRatio
HOT_SELLERS_RATIO = 4  # configuration.hotSellersRatio
HOT_BIDDERS_RATIO = 4  # configuration.hotBiddersRatio
HOT_BATCH = 100  # HOT_AUCTION_RATIO / HOT_BIDDER_RATIO / HOT_SELLER_RATIO constants
HOT_CHANNELS_RATIO = 2
CHANNELS_NUMBER = 10_000
HOT_CHANNELS: tuple[str, ...] = ("Google", "Facebook", "Baidu", "Apple")
AVG_PERSON_BYTES = 200
AVG_AUCTION_BYTES = 500
AVG_BID_BYTES = 100
MIN_STRING_LENGTH = 3
SIDE_INPUT_ROWS = 10_000

US_STATES = "AZ,CA,ID,OR,WA,WY".split(",")
US_CITIES = "Phoenix,Los Angeles,San Francisco,Boise,Portland,Bend,Redmond,Seattle,Kent,Cheyenne".split(",")
FIRST_NAMES = "Peter,Paul,Luke,John,Saul,Vicky,Kate,Julie,Sarah,Deiter,Walter".split(",")
LAST_NAMES = "Shultz,Abrams,Spencer,White,Bartels,Walton,Smith,Jones,Noris".split(",")

LETTERS = "abcdefghijklmnopqrstuvwxyz"
# nextString: a space with probability 1/13 (weight 26 of 338), else one of 26 letters (12 each).
_STRING_SYMBOLS = [" "] + list(LETTERS)
_STRING_CUM_WEIGHTS = list(itertools.accumulate([26] + [12] * 26))

DEFAULT_BASE_TIME = "2015-07-15 00:00:00.000"  # Beam's NexmarkUtils.BASE_TIME

# A uniform double in [0, 1): `int(rnd() * n)` draws from [0, n) (Java's nextInt(n); the bias of
# at most n / 2^53 does not matter here, and it is several times faster than randrange).
Uniform = Callable[[], float]


@dataclass(frozen=True)
class Config:
    """What the generated stream is a function of."""

    events: int
    rate: float = 10_000.0
    seed: int = 0
    base_time_ms: int = 0
    first_event_id: int = 0

    @property
    def inter_event_delay_us(self) -> float:
        return 1_000_000.0 / self.rate

    def timestamp(self, event_number: int) -> int:
        """GeneratorConfig.timestampForEvent."""
        return self.base_time_ms + int(event_number * self.inter_event_delay_us) // 1000


def parse_time(text: str) -> int:
    """ms since the epoch of 'yyyy-MM-dd HH:mm:ss[.SSS]' (UTC), or of a number of ms."""
    if text.lstrip("-").isdigit():
        return int(text)
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
    dt = datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
    return calendar.timegm(dt.timetuple()) * 1000 + dt.microsecond // 1000


class TimeFormat:
    """'yyyy-MM-dd HH:mm:ss.SSS' (UTC) of ms timestamps, the seconds part cached."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, ms: int) -> str:
        second, milli = divmod(ms, 1000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{milli:03d}"


def format_time(ms: int) -> str:
    second, milli = divmod(ms, 1000)
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(second))}.{milli:03d}"


# --- ids (PersonGenerator / AuctionGenerator) -----------------------------------------------------


def last_base0_person_id(event_id: int) -> int:
    epoch, offset = divmod(event_id, TOTAL_PROPORTION)
    if offset >= PERSON_PROPORTION:
        offset = PERSON_PROPORTION - 1
    return epoch * PERSON_PROPORTION + offset


def last_base0_auction_id(event_id: int) -> int:
    epoch, offset = divmod(event_id, TOTAL_PROPORTION)
    if offset < PERSON_PROPORTION:
        epoch -= 1
        offset = AUCTION_PROPORTION - 1
    elif offset >= PERSON_PROPORTION + AUCTION_PROPORTION:
        offset = AUCTION_PROPORTION - 1
    else:
        offset -= PERSON_PROPORTION
    return epoch * AUCTION_PROPORTION + offset


def next_base0_person_id(event_id: int, rnd: Uniform) -> int:
    num_people = last_base0_person_id(event_id) + 1
    active = min(num_people, NUM_ACTIVE_PEOPLE)
    return num_people - active + int(rnd() * (active + PERSON_ID_LEAD))


def next_base0_auction_id(event_id: int, rnd: Uniform) -> int:
    max_auction = last_base0_auction_id(event_id)
    min_auction = max(max_auction - NUM_IN_FLIGHT_AUCTIONS, 0)
    return min_auction + int(rnd() * (max_auction - min_auction + 1 + AUCTION_ID_LEAD))


# --- strings and prices (StringsGenerator / PriceGenerator) ---------------------------------------


def next_price(rnd: Uniform) -> int:
    return int(math.floor(10.0 ** (rnd() * 6.0) * 100.0 + 0.5))


def next_string(rng: random.Random, max_length: int) -> str:
    n = MIN_STRING_LENGTH + rng.randrange(max_length - MIN_STRING_LENGTH)
    return "".join(rng.choices(_STRING_SYMBOLS, cum_weights=_STRING_CUM_WEIGHTS, k=n)).strip()


def next_url_part(rng: random.Random) -> str:
    """nextString(random, 5, '_'): 3 or 4 symbols, '_' with probability 1/13."""
    n = MIN_STRING_LENGTH + rng.randrange(5 - MIN_STRING_LENGTH)
    return "".join(rng.choices(_STRING_SYMBOLS, cum_weights=_STRING_CUM_WEIGHTS, k=n)).replace(" ", "_")


class ExtraPool:
    """Random lowercase letters to take `extra` padding from."""

    SIZE = 1 << 20

    def __init__(self, seed: int) -> None:
        rng = random.Random(f"nexmark-extra-{seed}")
        self.text = "".join(rng.choices(LETTERS, k=self.SIZE))

    def next_extra(self, rng: random.Random, current_size: int, desired_average: int) -> str:
        """StringsGenerator.nextExtra: a length averaging `desired_average - current_size`."""
        if current_size > desired_average:
            return ""
        desired = desired_average - current_size
        delta = int(desired * 0.2 + 0.5)
        rnd = rng.random
        size = desired - delta + int(rnd() * 2 * delta)
        start = int(rnd() * (self.SIZE - size))
        return self.text[start : start + size]


def base_url(rng: random.Random) -> str:
    return (
        f"https://www.nexmark.com/{next_url_part(rng)}/{next_url_part(rng)}/{next_url_part(rng)}"
        "/item.htm?query=1"
    )


def reverse_bits32(n: int) -> int:
    """Integer.reverse as a signed 32-bit int."""
    r = int(f"{n & 0xFFFFFFFF:032b}"[::-1], 2)
    return r - (1 << 32) if r >= 1 << 31 else r


@dataclass
class Channels:
    hot_urls: list[str]
    channels: list[tuple[str, str]]

    @staticmethod
    def build(seed: int) -> Channels:
        rng = random.Random(f"nexmark-urls-{seed}")
        hot = [base_url(rng) for _ in HOT_CHANNELS]
        channels = []
        for n in range(CHANNELS_NUMBER):
            url = base_url(rng)
            if rng.randrange(10) > 0:
                url += f"&channel_id={abs(reverse_bits32(n))}"
            channels.append((f"channel-{n}", url))
        return Channels(hot, channels)


# --- events -------------------------------------------------------------------------------------


@dataclass
class Chunk:
    """The events of one chunk, per topic: JSON values and/or columns, and event times."""

    index: int
    json: dict[str, list[bytes]] = field(default_factory=lambda: {t: [] for t in TOPICS})
    columns: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    times: dict[str, array.array] = field(default_factory=lambda: {t: array.array("q") for t in TOPICS})


COLUMNS: dict[str, tuple[str, ...]] = {
    "person": ("id", "name", "emailAddress", "creditCard", "city", "state", "dateTime", "extra"),
    "auction": (
        "id", "itemName", "description", "initialBid", "reserve", "dateTime", "expires",
        "seller", "category", "extra",
    ),
    "bid": ("auction", "bidder", "price", "channel", "url", "dateTime", "extra"),
}
TIME_COLUMNS = {"dateTime", "expires"}


_state: tuple[Config, Channels, ExtraPool] | None = None


def _init_worker(config: Config) -> None:
    global _state
    _state = (config, Channels.build(config.seed), ExtraPool(config.seed))


def _chunk_job(args: tuple[int, bool, bool]) -> Chunk:
    assert _state is not None, "worker not initialised"
    config, channels, pool = _state
    index, want_json, want_columns = args
    return generate_chunk(config, channels, pool, index, want_json, want_columns)


def generate_chunk(
    config: Config,
    channels: Channels,
    pool: ExtraPool,
    index: int,
    want_json: bool,
    want_columns: bool,
) -> Chunk:
    """Events [index * CHUNK, min((index + 1) * CHUNK, events)).

    The JSON is written by hand for speed: every generated string is made of letters, digits,
    spaces, '_', '@', '.', '-', ':', '/', '?', '&' and '=', none of which JSON escapes.
    """
    rng = random.Random((config.seed << 40) ^ index)
    rnd = rng.random

    def below(n: int) -> int:
        return int(rnd() * n)

    chunk = Chunk(index)
    if want_columns:
        chunk.columns = {t: {c: [] for c in COLUMNS[t]} for t in TOPICS}
    fmt = TimeFormat()
    hot_urls = channels.hot_urls
    channel_list = channels.channels
    rate_us = config.inter_event_delay_us
    base = config.base_time_ms
    events_for_auctions = (NUM_IN_FLIGHT_AUCTIONS * TOTAL_PROPORTION) // AUCTION_PROPORTION
    person_json, auction_json, bid_json = (chunk.json[t] for t in TOPICS)
    person_times, auction_times, bid_times = (chunk.times[t] for t in TOPICS)
    cols = chunk.columns

    start = index * CHUNK
    end = min(start + CHUNK, config.events)
    for n in range(start, end):
        event_id = config.first_event_id + n
        ts = base + int(n * rate_us) // 1000
        rem = event_id % TOTAL_PROPORTION
        if rem >= PERSON_PROPORTION + AUCTION_PROPORTION:
            # BidGenerator.nextBid
            if below(HOT_AUCTION_RATIO) > 0:
                auction = (last_base0_auction_id(event_id) // HOT_BATCH) * HOT_BATCH
            else:
                auction = next_base0_auction_id(event_id, rnd)
            auction += FIRST_AUCTION_ID
            if below(HOT_BIDDERS_RATIO) > 0:
                bidder = (last_base0_person_id(event_id) // HOT_BATCH) * HOT_BATCH + 1
            else:
                bidder = next_base0_person_id(event_id, rnd)
            bidder += FIRST_PERSON_ID
            price = next_price(rnd)
            if below(HOT_CHANNELS_RATIO) > 0:
                i = below(len(HOT_CHANNELS))
                channel, url = HOT_CHANNELS[i], hot_urls[i]
            else:
                channel, url = channel_list[below(CHANNELS_NUMBER)]
            extra = pool.next_extra(rng, 32, AVG_BID_BYTES)
            bid_times.append(ts)
            if want_json:
                bid_json.append(
                    f'{{"auction":{auction},"bidder":{bidder},"price":{price},"channel":"{channel}",'
                    f'"url":"{url}","dateTime":"{fmt(ts)}","extra":"{extra}"}}'.encode()
                )
            if want_columns:
                c = cols["bid"]
                c["auction"].append(auction)
                c["bidder"].append(bidder)
                c["price"].append(price)
                c["channel"].append(channel)
                c["url"].append(url)
                c["dateTime"].append(ts)
                c["extra"].append(extra)
        elif rem >= PERSON_PROPORTION:
            # AuctionGenerator.nextAuction
            auction_id = last_base0_auction_id(event_id) + FIRST_AUCTION_ID
            if below(HOT_SELLERS_RATIO) > 0:
                seller = (last_base0_person_id(event_id) // HOT_BATCH) * HOT_BATCH
            else:
                seller = next_base0_person_id(event_id, rnd)
            seller += FIRST_PERSON_ID
            category = FIRST_CATEGORY_ID + below(NUM_CATEGORIES)
            initial_bid = next_price(rnd)
            future = base + int((n + events_for_auctions) * rate_us) // 1000
            horizon = future - ts
            expires = ts + 1 + below(max(horizon * 2, 1))
            name = next_string(rng, 20)
            desc = next_string(rng, 100)
            reserve = initial_bid + next_price(rnd)
            extra = pool.next_extra(rng, 8 + len(name) + len(desc) + 40, AVG_AUCTION_BYTES)
            auction_times.append(ts)
            if want_json:
                auction_json.append(
                    f'{{"id":{auction_id},"itemName":"{name}","description":"{desc}",'
                    f'"initialBid":{initial_bid},"reserve":{reserve},"dateTime":"{fmt(ts)}",'
                    f'"expires":"{format_time(expires)}","seller":{seller},"category":{category},'
                    f'"extra":"{extra}"}}'.encode()
                )
            if want_columns:
                c = cols["auction"]
                c["id"].append(auction_id)
                c["itemName"].append(name)
                c["description"].append(desc)
                c["initialBid"].append(initial_bid)
                c["reserve"].append(reserve)
                c["dateTime"].append(ts)
                c["expires"].append(expires)
                c["seller"].append(seller)
                c["category"].append(category)
                c["extra"].append(extra)
        else:
            # PersonGenerator.nextPerson
            person_id = last_base0_person_id(event_id) + FIRST_PERSON_ID
            name = f"{FIRST_NAMES[below(len(FIRST_NAMES))]} {LAST_NAMES[below(len(LAST_NAMES))]}"
            email = f"{next_string(rng, 7)}@{next_string(rng, 5)}.com"
            card = " ".join(f"{below(10000):04d}" for _ in range(4))
            city = US_CITIES[below(len(US_CITIES))]
            state = US_STATES[below(len(US_STATES))]
            size = 8 + len(name) + len(email) + len(card) + len(city) + len(state)
            extra = pool.next_extra(rng, size, AVG_PERSON_BYTES)
            person_times.append(ts)
            if want_json:
                person_json.append(
                    f'{{"id":{person_id},"name":"{name}","emailAddress":"{email}",'
                    f'"creditCard":"{card}","city":"{city}","state":"{state}",'
                    f'"dateTime":"{fmt(ts)}","extra":"{extra}"}}'.encode()
                )
            if want_columns:
                c = cols["person"]
                c["id"].append(person_id)
                c["name"].append(name)
                c["emailAddress"].append(email)
                c["creditCard"].append(card)
                c["city"].append(city)
                c["state"].append(state)
                c["dateTime"].append(ts)
                c["extra"].append(extra)
    return chunk


def chunks(config: Config, workers: int, want_json: bool, want_columns: bool) -> Iterator[Chunk]:
    """The chunks in order, generated by `workers` processes (1: in this one)."""
    count = (config.events + CHUNK - 1) // CHUNK
    jobs = [(i, want_json, want_columns) for i in range(count)]
    if workers <= 1 or count <= 1:
        _init_worker(config)
        for job in jobs:
            yield _chunk_job(job)
        return
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(config,)) as pool:
        # At most 2 chunks per worker ahead of the consumer: memory stays bounded when the
        # outputs are slower than the generators.
        pending: deque[Any] = deque()
        for job in jobs:
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
            pending.append(pool.apply_async(_chunk_job, (job,)))
        while pending:
            yield pending.popleft().get()


# --- sinks --------------------------------------------------------------------------------------


class KafkaSink:
    """Produces each topic's JSON values, round robin over its partitions."""

    def __init__(self, bootstrap: str, partitions: int, extra_config: dict[str, str]) -> None:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic

        self.partitions = partitions
        admin = AdminClient({"bootstrap.servers": bootstrap})
        wanted = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in TOPICS]
        for topic, future in admin.create_topics(wanted, operation_timeout=30).items():
            try:
                future.result()
            except Exception as e:  # noqa: BLE001 - KafkaException carries the broker's code
                if "TOPIC_ALREADY_EXISTS" not in str(e):
                    raise RuntimeError(f"creating topic {topic}: {e}") from e
        config = {
            "bootstrap.servers": bootstrap,
            "linger.ms": "50",
            "batch.size": str(1 << 20),
            "batch.num.messages": "100000",
            "compression.type": "lz4",
            "acks": "all",
            "enable.idempotence": "true",
            "queue.buffering.max.messages": "1000000",
            "queue.buffering.max.kbytes": str(1 << 20),
            "message.max.bytes": str(4 << 20),
        }
        config.update(extra_config)
        self.errors: list[str] = []
        self.producer = Producer(config)
        self.written = {t: 0 for t in TOPICS}

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None and len(self.errors) < 10:
            self.errors.append(str(err))

    def write(self, chunk: Chunk) -> None:
        produce = self.producer.produce
        poll = self.producer.poll
        for topic in TOPICS:
            values = chunk.json[topic]
            k = self.written[topic]
            for value in values:
                # Round robin: a topic's k-th record goes to partition k % partitions.
                p = k % self.partitions
                while True:
                    try:
                        produce(topic, value, partition=p, on_delivery=self._delivered)
                        break
                    except BufferError:
                        poll(0.05)
                k += 1
            self.written[topic] = k
            poll(0)
        if self.errors:
            raise RuntimeError(f"producing failed: {self.errors}")

    def close(self) -> None:
        remaining = self.producer.flush(120)
        if remaining:
            raise RuntimeError(f"{remaining} records were not delivered within 120 s")
        if self.errors:
            raise RuntimeError(f"producing failed: {self.errors}")


class JsonlSink:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.files = {t: (directory / f"{t}.jsonl").open("wb") for t in TOPICS}

    def write(self, chunk: Chunk) -> None:
        for topic in TOPICS:
            values = chunk.json[topic]
            if values:
                self.files[topic].write(b"\n".join(values) + b"\n")

    def close(self) -> None:
        for f in self.files.values():
            f.close()


class ParquetSink:
    def __init__(self, directory: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        directory.mkdir(parents=True, exist_ok=True)
        self.schemas = {
            t: pa.schema(
                [
                    (
                        c,
                        pa.timestamp("ms")
                        if c in TIME_COLUMNS
                        else pa.int64()
                        if c in {"id", "initialBid", "reserve", "seller", "category", "auction", "bidder", "price"}
                        else pa.string(),
                    )
                    for c in COLUMNS[t]
                ]
            )
            for t in TOPICS
        }
        self.writers = {
            t: pq.ParquetWriter(directory / f"{t}.parquet", self.schemas[t], compression="zstd")
            for t in TOPICS
        }

    def write(self, chunk: Chunk) -> None:
        for topic in TOPICS:
            columns = chunk.columns[topic]
            if not columns[COLUMNS[topic][0]]:
                continue
            schema = self.schemas[topic]
            arrays = [self.pa.array(columns[f.name], type=f.type) for f in schema]
            self.writers[topic].write_table(self.pa.Table.from_arrays(arrays, schema=schema))

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


def side_input_values() -> list[bytes]:
    """SideInputGenerator: rows (i, "i") for i in [0, 10000), as the q13 side input."""
    return [json.dumps({"key": i, "value": str(i)}).encode() for i in range(SIDE_INPUT_ROWS)]


def produce_side_input(bootstrap: str) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for topic, future in admin.create_topics([NewTopic("side_input", 1, 1)]).items():
        try:
            future.result()
        except Exception as e:  # noqa: BLE001 - KafkaException carries the broker's code
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise RuntimeError(f"creating topic {topic}: {e}") from e
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": "20", "acks": "all"})
    for value in side_input_values():
        producer.produce("side_input", value)
    if producer.flush(60):
        raise RuntimeError("the side input was not delivered")


@dataclass
class Result:
    config: dict[str, Any]
    counts: dict[str, int]
    # Largest event time per topic partition (ms), for the final watermark of a job.
    max_time: dict[str, dict[str, int]]
    seconds: float
    partitions: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def generate(
    config: Config,
    *,
    bootstrap: str | None = None,
    partitions: int = 1,
    parquet: Path | None = None,
    jsonl: Path | None = None,
    workers: int = 1,
    producer_config: dict[str, str] | None = None,
    progress: bool = False,
) -> Result:
    """Generates the events into the outputs given."""
    kafka = KafkaSink(bootstrap, partitions, producer_config or {}) if bootstrap else None
    sinks: list[KafkaSink | JsonlSink | ParquetSink] = []
    if kafka:
        sinks.append(kafka)
    if jsonl:
        sinks.append(JsonlSink(jsonl))
    if parquet:
        sinks.append(ParquetSink(parquet))
    want_json = bool(kafka or jsonl)
    want_columns = parquet is not None
    counts = {t: 0 for t in TOPICS}
    max_time: dict[str, dict[int, int]] = {t: {} for t in TOPICS}
    started = time.monotonic()
    for chunk in chunks(config, workers, want_json, want_columns):
        for sink in sinks:
            sink.write(chunk)
        for t in TOPICS:
            times = chunk.times[t]
            first = counts[t]
            counts[t] += len(times)
            # The topic's k-th record is in partition k % partitions, and times increase: the
            # last `partitions` records of the chunk hold each partition's latest time.
            for i in range(max(0, len(times) - partitions), len(times)):
                max_time[t][(first + i) % partitions] = times[i]
        if progress and chunk.index % 50 == 49:
            done = sum(counts.values())
            rate = done / (time.monotonic() - started)
            print(f"  {done:,} events ({rate:,.0f}/s)", file=sys.stderr)
    for sink in sinks:
        sink.close()
    return Result(
        config=asdict(config),
        counts=counts,
        max_time={t: {str(p): v for p, v in m.items()} for t, m in max_time.items()},
        seconds=time.monotonic() - started,
        partitions=partitions,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, required=True, help="events in all (people, auctions and bids)")
    parser.add_argument("--rate", type=float, default=10_000.0, help="events per second of event time [10000]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base-time", default=DEFAULT_BASE_TIME, help=f"event time of the first event, UTC [{DEFAULT_BASE_TIME}]")
    parser.add_argument("--bootstrap", help="produce to this Kafka cluster")
    parser.add_argument("--partitions", type=int, default=1, help="partitions of each topic it creates [1]")
    parser.add_argument("--side-input", action="store_true", help="also produce the q13 side input topic `side_input`")
    parser.add_argument("--parquet", type=Path, help="write DIR/{person,auction,bid}.parquet")
    parser.add_argument("--jsonl", type=Path, help="write DIR/{person,auction,bid}.jsonl")
    parser.add_argument("--manifest", type=Path, help="write the manifest here")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="generating processes [cpus]")
    args = parser.parse_args(argv)
    if not (args.bootstrap or args.parquet or args.jsonl):
        parser.error("give at least one of --bootstrap, --parquet, --jsonl")
    config = Config(events=args.events, rate=args.rate, seed=args.seed, base_time_ms=parse_time(args.base_time))
    result = generate(
        config,
        bootstrap=args.bootstrap,
        partitions=args.partitions,
        parquet=args.parquet,
        jsonl=args.jsonl,
        workers=args.workers,
        progress=True,
    )
    if args.side_input and args.bootstrap:
        produce_side_input(args.bootstrap)
    manifest = args.manifest or (args.parquet or args.jsonl or Path(".")) / "manifest.json"
    if args.parquet or args.jsonl or args.manifest:
        manifest.write_text(result.to_json())
    total = sum(result.counts.values())
    print(
        f"{total:,} events ({', '.join(f'{t} {n:,}' for t, n in result.counts.items())}) "
        f"in {result.seconds:.1f} s: {total / max(result.seconds, 1e-9):,.0f} events/s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
