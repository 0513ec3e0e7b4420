"""Confluent's Azure Blob Storage and GCS sinks, by their own class names and keys
(`azblob.*`, `az.*`, `gcs.*`, their `format.class` packages), on the layout and exactly-once
file naming the S3 sink's tests check (test_connect_s3.py).

Azure runs against Azurite, Microsoft's Azure Storage emulator (npm, installed by scripts/test
into tests/python/emulators), with its well-known account key; the container is made and the
blobs read back with Microsoft's Python client (azure-storage-blob). No GCS emulator on PyPI or
npm accepts object_store's GCS uploads (they use GCS's XML API; gcp-storage-emulator answers its
PUT without the ETag the client requires), so the GCS sink is pointed at moto's S3 server, which
speaks the same XML API for PUT and multipart uploads: that checks Spate's GCS settings, requests
and object names, not Google's service."""

from __future__ import annotations

import io
import json
import socket
import subprocess
from pathlib import Path

import fastavro
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient

from helpers import wait_until
from s3 import S3Server
from test_connect import broker, worker  # noqa: F401  (the fixtures)
from test_connect_s3 import committed, order, produce_orders

AZURITE = Path(__file__).parent / "emulators" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's account and key, the same everywhere (Microsoft documents them).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURE_SINK = "io.confluent.connect.azure.blob.AzureBlobStorageSinkConnector"
GCS_SINK = "io.confluent.connect.gcs.GcsSinkConnector"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Azurite:
    """Azurite's blob service in memory on a free port; `url` is the account's blob endpoint."""

    def __init__(self, workdir: Path):
        if not AZURITE.exists():
            raise AssertionError(f"{AZURITE} not found: SPATE_TEST_PHASES=venv scripts/test installs it")
        self.port = free_port()
        self.log = workdir / "azurite.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
                 "--inMemoryPersistence", "--skipApiVersionCheck"],
                cwd=workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}/{ACCOUNT}"

        def listening() -> bool:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_until(listening, timeout_s=60, what="Azurite listening")
        self.client = BlobServiceClient.from_connection_string(
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.url};")

    def blobs(self, container: str, prefix: str = "") -> list[str]:
        return sorted(b.name for b in self.client.get_container_client(container)
                      .list_blobs(name_starts_with=prefix))

    def get(self, container: str, name: str) -> bytes:
        return self.client.get_blob_client(container, name).download_blob().readall()

    def stop(self) -> None:
        # In memory, nothing to save; SIGTERM waits for idle keep-alive connections to close.
        self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def azurite(tmp_path):
    server = Azurite(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def s3():
    server = S3Server()
    yield server
    server.stop()


def common(topic: str, fmt_class: str) -> dict:
    return {
        "topics": topic, "tasks.max": "1", "flush.size": "4", "format.class": fmt_class,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
    }


def test_azure_blob_sink_writes_json_and_parquet_blobs_to_azurite(broker, worker, azurite):  # noqa: F811
    w = worker()
    azurite.client.create_container("lake")
    produce_orders(broker.kafka_addr, "orders", range(10))
    formats = {"json": ".json", "parquet": ".snappy.parquet"}
    for fmt in formats:
        code, created = w.call("POST", "/connectors", {"name": f"az-{fmt}", "config": {
            "connector.class": AZURE_SINK,
            "azblob.account.name": ACCOUNT, "azblob.account.key": ACCOUNT_KEY,
            "azblob.container.name": "lake", "store.url": azurite.url,
            "topics.dir": f"{fmt}-topics",
            **common("orders", f"io.confluent.connect.azure.blob.format.{fmt}."
                               f"{'JsonFormat' if fmt == 'json' else 'ParquetFormat'}")}})
        assert code == 201, created

    # Ten records, flush.size 4: two blobs named by their first offset, the offset committed
    # after them; the last two wait for the next file.
    for fmt, ext in formats.items():
        expected = [f"{fmt}-topics/orders/partition=0/orders+0+{o:010d}{ext}" for o in (0, 4)]
        wait_until(lambda: azurite.blobs("lake", f"{fmt}-topics/") == expected, timeout_s=60,
                   what=f"two {fmt} blobs")
        wait_until(lambda: committed(w, f"az-{fmt}") == 8, timeout_s=60, what=f"az-{fmt} committed")
    for fmt in formats:
        records = []
        for name in azurite.blobs("lake", f"{fmt}-topics/"):
            data = azurite.get("lake", name)
            if fmt == "json":
                records += [json.loads(line) for line in data.decode().splitlines()]
            else:
                records += pq.read_table(io.BytesIO(data)).to_pylist()
        assert records == [order(i) for i in range(8)], fmt


def test_gcs_sink_writes_avro_objects_under_confluents_names(broker, worker, s3):  # noqa: F811
    w = worker()
    # A bucket name without characters object_store percent-encodes: moto does not decode the
    # bucket part of the path (GCS does).
    s3.create_bucket("gcslake")
    produce_orders(broker.kafka_addr, "orders", range(10))
    # No credentials with a store.url: requests go unsigned, as to an emulator.
    code, created = w.call("POST", "/connectors", {"name": "to-gcs", "config": {
        "connector.class": GCS_SINK, "gcs.bucket.name": "gcslake", "store.url": s3.url,
        "avro.codec": "deflate",
        **common("orders", "io.confluent.connect.gcs.format.avro.AvroFormat")}})
    assert code == 201, created
    expected = [f"topics/orders/partition=0/orders+0+{o:010d}.avro" for o in (0, 4)]
    wait_until(lambda: s3.keys("gcslake") == expected, timeout_s=60, what="two Avro objects")
    wait_until(lambda: committed(w, "to-gcs") == 8, timeout_s=60, what="to-gcs committed")
    records = []
    for key in expected:
        reader = fastavro.reader(io.BytesIO(s3.get("gcslake", key)))
        assert reader.codec == "deflate"
        records += list(reader)
    assert records == [order(i) for i in range(8)]


def test_bad_azure_and_gcs_configs_get_400_naming_their_own_keys(worker):  # noqa: F811
    w = worker()
    code, body = w.call("PUT", f"/connector-plugins/{AZURE_SINK}/config/validate", {
        "connector.class": AZURE_SINK, "name": "bad-azure", "topics": "t", "flush.size": "4",
        "format.class": "io.confluent.connect.azure.blob.format.csv.CsvFormat",
        "az.compression.type": "brotli"})
    assert code == 200, body
    errors = {c["value"]["name"]: c["value"]["errors"] for c in body["configs"] if c["value"]["errors"]}
    assert set(errors) == {"azblob.account.name", "format.class", "az.compression.type"}, errors
    # The choices named are this sink's own classes.
    assert "io.confluent.connect.azure.blob.format.parquet.ParquetFormat" in errors["format.class"][0]

    code, body = w.call("POST", "/connectors", {"name": "bad-gcs", "config": {
        "connector.class": GCS_SINK, "topics": "t", "flush.size": "4",
        "format.class": "io.confluent.connect.gcs.format.json.JsonFormat",
        "gcs.part.size": "1024"}})
    assert code == 400, body
    assert "gcs.bucket.name" in body["message"] and "gcs.part.size" in body["message"], body
