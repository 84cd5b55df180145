"""The review page's HTTP server: stdlib ``http.server`` on 127.0.0.1, no external assets, works offline.

Routes:

- ``GET /``: the page (``page.html``, one file with inline CSS and JS);
- ``GET /api/sample``: the session's rows and their current decisions (JSON);
- ``POST /api/decision``: ``{"hash", "verdict" (null clears), "relabel"}`` → written to the review file before
  the answer is sent, so a decision the page shows as saved is on disk.

Bound to loopback only: the page writes to the checkout, and nobody else on the network should be able to.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from synthbench.errors import SynthbenchError
from synthbench.review.session import ReviewSession

_MAX_BODY = 64 * 1024  # bytes; a decision is ~100


def page_html() -> bytes:
    return resources.files("synthbench.review").joinpath("page.html").read_bytes()


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per keypress would drown the terminal's "serving at" line

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), "application/json")

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, page_html(), "text/html; charset=utf-8")
        elif path == "/api/sample":
            self._json(HTTPStatus.OK, self.server.session.payload())
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no route {path}"})

    def do_POST(self) -> None:
        if self.path != "/api/decision":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= _MAX_BODY:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "a decision is a small JSON body"})
            return
        try:
            body = json.loads(self.rfile.read(length))
            if not isinstance(body, dict) or not isinstance(body.get("hash"), str):
                raise ValueError("the body needs a 'hash'")
            answer = self.server.session.decide(body["hash"], body.get("verdict"), body.get("relabel"))
        except (ValueError, SynthbenchError) as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        self._json(HTTPStatus.OK, answer)


class ReviewServer(ThreadingHTTPServer):
    """Serves one :class:`ReviewSession`; ``port=0`` picks a free port (see :attr:`url`)."""

    daemon_threads = True

    def __init__(self, session: ReviewSession, host: str = "127.0.0.1", port: int = 0) -> None:
        self.session = session
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start_background(self) -> threading.Thread:
        """Serve from a daemon thread (tests, notebooks); stop with ``shutdown()`` then ``server_close()``."""
        thread = threading.Thread(target=self.serve_forever, name="synthbench-review", daemon=True)
        thread.start()
        return thread
