"""An S3-compatible server for the object storage tests: moto's server (from PyPI), on a port
the kernel picks, behind a TCP relay the test can cut to play an outage (connections refused,
then served again, with the bucket's contents kept)."""

from __future__ import annotations

import logging
import socket
import threading

import boto3
from moto.server import ThreadedMotoServer

REGION = "us-east-1"

# moto serves through werkzeug, which logs every request.
logging.getLogger("werkzeug").setLevel(logging.WARNING)
CREDENTIALS = {"aws_access_key_id": "spate-test", "aws_secret_access_key": "spate-secret"}


class Relay:
    """Forwards TCP connections from its own port to `target`; `cut()` closes every
    connection and refuses new ones until `restore()`."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if not self.up:
                    client.close()
                    continue
                try:
                    upstream = socket.create_connection(self.target)
                except OSError:
                    client.close()
                    continue
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        with self.lock:
            self.up = False
            for s in self.open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.open.clear()

    def restore(self) -> None:
        with self.lock:
            self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


class S3Server:
    """moto's S3 server and a relay in front of it; `url` is the relay's."""

    def __init__(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.direct_url = f"http://{host}:{port}"
        self.relay = Relay((host, port))
        self.url = f"http://127.0.0.1:{self.relay.port}"
        self.client = boto3.client("s3", endpoint_url=self.direct_url, region_name=REGION,
                                   **CREDENTIALS)

    def create_bucket(self, name: str) -> None:
        self.client.create_bucket(Bucket=name)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                           Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return sorted(keys)

    def get(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def stop(self) -> None:
        self.relay.close()
        self.server.stop()
