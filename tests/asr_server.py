"""``asr-serve`` as a real process on a free local port, for the tests that talk to it."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator

from tests.conftest import BIN


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_server(*options: str) -> Iterator[str]:
    """The server's URL once it answers ``/health``; the process is stopped afterwards."""
    port = free_port()
    process = subprocess.Popen(
        [BIN / "asr-serve", f"port={port}", *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def health(url: str) -> dict:
    return json.loads(urllib.request.urlopen(f"{url}/health", timeout=10).read())


def wait_for(condition, what: str, seconds: float = 30.0) -> None:
    """Poll ``condition()`` until true; fail after ``seconds`` (a deadline, not a race)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
