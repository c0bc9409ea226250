"""A real HTTP server on 127.0.0.1 for download tests: serves a folder, honours ``Range`` as web
servers do (206 with Content-Range; 416 for a range that starts at or past the end), and can
misbehave on purpose."""

from __future__ import annotations

import contextlib
import http.server
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Behaviour:
    """What the server does; tests change it between requests."""

    drop_after: int | None = None
    """Send the headers of the whole answer, then close the connection after this many bytes
    (once: the next request is served in full)."""
    corrupt: bool = False
    """Serve every file with its middle byte flipped."""
    requests: list[str] = field(default_factory=list)
    """Each request as ``"<path> <Range header or ->"``."""


def _handler(root: Path, behaviour: Behaviour):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            behaviour.requests.append(f"{self.path} {self.headers.get('Range', '-')}")
            path = root / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404)
                return
            data = bytearray(path.read_bytes())
            if behaviour.corrupt and data:
                data[len(data) // 2] ^= 0xFF
            start, status = 0, 200
            if match := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "")):
                start = int(match[1])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            body = bytes(data[start:])
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if behaviour.drop_after is not None:
                body, behaviour.drop_after = body[: behaviour.drop_after], None
                self.wfile.write(body)
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@contextlib.contextmanager
def serve(root: Path, behaviour: Behaviour | None = None) -> Iterator[tuple[str, Behaviour]]:
    """``(base URL, behaviour)`` of a server for ``root`` on a free port, for the ``with`` block."""
    behaviour = behaviour or Behaviour()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(root, behaviour))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", behaviour
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
