"""A real OpenAI-compatible HTTP server on loopback, for tests and benchmarks, on ``aiohttp.web``.

It speaks HTTP/1.1 with keep-alive on a real socket, so the real ``openai`` client talks to it exactly as it
talks to api.openai.com, vLLM or llama.cpp's server. Routes:

- ``POST /v1/chat/completions``: a deterministic answer derived from the messages and sampling params, with
  ``usage`` token counts (prompt ≈ chars/4, completion = words, capped at ``max_tokens``);
- ``GET /v1/models``; ``POST /v1/files`` (multipart), ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``;
- ``POST /v1/batches``, ``GET /v1/batches/{id}`` (a batch completes after ``batch_polls`` polls);
- control: ``GET /_control/stats``, ``POST /_control/config`` (partial ``ServerConfig`` as JSON),
  ``POST /_control/reset`` (zero the counters and the request numbering).

Behaviour is set by ``ServerConfig``: latency, capacity (concurrent slots; beyond them a 429, with or without
``Retry-After``, or a queue as vLLM does), the answer text, and faults, either scripted by chat request number
(1-based, in arrival order) or drawn with a seeded RNG. Fault kinds: ``429``, ``429-ra`` (Retry-After:
``retry_after``), ``500``, ``503``, ``timeout`` (say nothing for ``hang_s``, then drop the connection),
``reset`` (TCP RST without a response), ``malformed`` (200 with a truncated JSON body), ``empty`` (200 with
``choices: []``), ``401``, ``400``, ``404``.

Billing as an endpoint bills: ``answered`` counts every chat request the server computed — answers, and the
unusable 200s (``malformed``, ``empty``) — whether or not the client was still listening (a client that gave up
early still pays). ``fingerprints`` counts the distinct requests among them: ``answered == fingerprints`` means
no request was paid twice.

Use ``serve(config)`` (a context manager; in a background thread, or ``in_process=False`` for a subprocess
that keeps the server off the client's CPU) or ``python -m synthbench.testing.openai_server --latency 0.2``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from synthbench.testing.openai_answers import (
    _FAULT_STATUS,
    BILLED_FAULTS,
    FAULT_KINDS,
    ServerConfig,
    _error,
    _json,
    answer_content,
    chat_completion,
    request_fingerprint,
    response_format_error,
)
from synthbench.testing.openai_batches import BatchRoutes

__all__ = ["FAULT_KINDS", "OpenAITestServer", "ServerConfig", "ServerHandle", "chat_completion", "serve"]


def _drop(request: web.Request, *, rst: bool) -> None:
    """Close the connection without a response (``rst``: with a TCP reset)."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if rst and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class OpenAITestServer(BatchRoutes):
    """The request handlers and counters. Runs inside one asyncio loop (see ``serve``)."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._slots_size: int | None = None
        self.reset()

    def reset(self) -> None:
        self.chat_requests = 0
        self.answered = 0
        self.fingerprints: set[str] = set()
        self.faults_injected: dict[str, int] = {}
        self.rejected_capacity = 0
        self.in_service = 0
        self.max_in_service = 0
        self.batches_created = 0
        self.batch_lines_answered = 0
        self.batch_lines_failed = 0
        self.arrivals: list[float] = []
        self.bearer_tokens: set[str] = set()
        self.structured_answers = 0  # answers to a schema with a pattern
        self.pattern_mismatches = 0
        self._rng = random.Random(self.config.seed)

    def stats(self) -> dict[str, Any]:
        return {
            "chat_requests": self.chat_requests,
            "answered": self.answered,
            "fingerprints": len(self.fingerprints),
            "faults": dict(self.faults_injected),
            "rejected_capacity": self.rejected_capacity,
            "in_service": self.in_service,
            "max_in_service": self.max_in_service,
            "batches_created": self.batches_created,
            "batch_lines_answered": self.batch_lines_answered,
            "batch_lines_failed": self.batch_lines_failed,
            "files": len(self.files),
            "batch_polls": sum(int(batch["_polls"]) for batch in self.batches.values()),
            "arrivals": list(self.arrivals),
            "structured_answers": self.structured_answers,
            "pattern_mismatches": self.pattern_mismatches,
            "cpu_s": time.process_time(),  # this process's CPU seconds (server + whatever shares it)
        }

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024**2)
        app.router.add_route("*", "/_control/{what}", self._control)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{file_id}", self._file)
        app.router.add_get("/v1/files/{file_id}/content", self._file_content)
        app.router.add_post("/v1/batches", self._create_batch)
        app.router.add_get("/v1/batches/{batch_id}", self._poll_batch)
        return app

    def _count_answer(self, fingerprint: str) -> None:
        self.answered += 1
        self.fingerprints.add(fingerprint)

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        token = request.headers.get("Authorization", "")
        self.bearer_tokens.add(token.removeprefix("Bearer "))
        if self.config.api_key is not None and token != f"Bearer {self.config.api_key}":
            return _json(*_FAULT_STATUS["401"])
        return None

    # -- routes ---------------------------------------------------------------------------------------------

    async def _control(self, request: web.Request) -> web.Response:
        what = request.match_info["what"]
        if what == "stats":
            return _json(200, self.stats())
        if request.method == "POST" and what == "config":
            self.config.update(await request.json())
            self._rng = random.Random(self.config.seed)
            return _json(200, self.config.to_json())
        if request.method == "POST" and what == "reset":
            self.reset()
            return _json(200, {"ok": True})
        return _json(404, _error(f"Unknown control route {what}", "invalid_request_error"))

    async def _models(self, request: web.Request) -> web.Response:
        model = self.config.model or "test-model"
        data = [{"id": model, "object": "model", "created": 0, "owned_by": "synthbench-tests"}]
        return self._unauthorized(request) or _json(200, {"object": "list", "data": data})

    def _pick_fault(self, number: int) -> str | None:
        if number in self.config.faults:
            return self.config.faults[number]
        for kind, rate in sorted(self.config.fault_rates.items()):
            if self._rng.random() < rate:
                return kind
        return None

    async def _chat(self, request: web.Request) -> web.Response:
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        self.chat_requests += 1
        number = self.chat_requests
        self.arrivals.append(time.monotonic())
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _json(
                400, _error("We could not parse the JSON body of your request", "invalid_request_error")
            )
        invalid = response_format_error(body)
        if invalid is not None:
            return _json(400, _error(invalid, "invalid_request_error"))
        fault = self._pick_fault(number)
        if fault is not None:
            self.faults_injected[fault] = self.faults_injected.get(fault, 0) + 1
            if fault in BILLED_FAULTS:  # computed, billed, unusable
                self._count_answer(request_fingerprint(body))
            return await self._fault(fault, request)
        cfg = self.config
        if cfg.capacity is not None and cfg.overflow == "reject" and self.in_service >= cfg.capacity:
            self.rejected_capacity += 1
            headers = {} if cfg.overflow_retry_after is None else {"Retry-After": cfg.overflow_retry_after}
            return _json(*_FAULT_STATUS["429"], headers)
        async with self._slot():
            self.in_service += 1
            self.max_in_service = max(self.max_in_service, self.in_service)
            try:
                if cfg.latency_s > 0:
                    await asyncio.sleep(cfg.latency_s)
            finally:
                self.in_service -= 1
        fingerprint = request_fingerprint(body)
        answer = chat_completion(body, number=number, model=cfg.model, fingerprint=fingerprint)
        message = answer["choices"][0]["message"]
        message["content"], matched = answer_content(body, cfg, fingerprint, message["content"])
        self.structured_answers += matched is not None
        self.pattern_mismatches += matched is False  # a constraining server could not have answered this
        self._count_answer(fingerprint)  # computed: billed whether or not the client still listens
        return _json(200, answer)

    def _slot(self) -> contextlib.AbstractAsyncContextManager[Any]:
        cfg = self.config
        if cfg.capacity is None or cfg.overflow != "queue":
            return contextlib.nullcontext()
        if self._slots is None or self._slots_size != cfg.capacity:
            self._slots, self._slots_size = asyncio.Semaphore(cfg.capacity), cfg.capacity
        return self._slots

    async def _fault(self, kind: str, request: web.Request) -> web.Response:
        if kind in ("reset", "timeout"):
            if kind == "timeout":
                await asyncio.sleep(self.config.hang_s)
            _drop(request, rst=kind == "reset")
            return web.Response(status=500)  # never reaches the client: the connection is gone
        if kind == "malformed":
            broken = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"ind'
            return web.Response(status=200, body=broken, content_type="application/json")
        if kind == "empty":
            payload = {
                "id": "chatcmpl-empty",
                "object": "chat.completion",
                "created": 0,
                "model": "test-model",
            }
            return _json(200, {**payload, "choices": [], "usage": None})
        if kind == "429-ra":
            return _json(*_FAULT_STATUS["429"], {"Retry-After": self.config.retry_after})
        return _json(*_FAULT_STATUS[kind])

    # -- files and batches ----------------------------------------------------------------------------------


# -- running it --------------------------------------------------------------------------------------------


class ServerHandle:
    """A running server: its ``base_url`` (``http://127.0.0.1:PORT/v1``) and its control endpoints."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def _control(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/_control/{path}",
            data=data,
            method="GET" if payload is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        return self._control("stats")

    def configure(self, **fields: Any) -> None:
        """Change ``ServerConfig`` fields of the running server (e.g. ``faults={3: "500"}``)."""
        if "faults" in fields:
            fields["faults"] = {str(k): v for k, v in (fields["faults"] or {}).items()}
        self._control("config", fields)

    def reset(self) -> None:
        """Zero the counters and the request numbering (the config stays)."""
        self._control("reset", {})

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Wait until no chat request is in service (e.g. after killing a client)."""
        deadline = time.monotonic() + timeout_s
        while self.stats()["in_service"] and time.monotonic() < deadline:
            time.sleep(0.02)


async def _run_server(server: OpenAITestServer, port: int, started: Any, stop: asyncio.Event) -> None:
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)  # dropped connections are the point, not news
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024, reuse_address=True)
    await site.start()
    sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
    started(sockets[0].getsockname()[1])
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def serve(config: ServerConfig | None = None, *, in_process: bool = True) -> Iterator[ServerHandle]:
    """Run the server on a free loopback port for the duration of the ``with`` block.

    ``in_process=True``: an asyncio loop in a daemon thread of this process. ``in_process=False``: a
    subprocess (``python -m synthbench.testing.openai_server``), so that the server does not compete with the
    client for the GIL (benchmarks)."""
    config = config or ServerConfig()
    if not in_process:
        with _serve_subprocess(config) as handle:
            yield handle
        return
    server = OpenAITestServer(config)
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def thread_main() -> None:
        async def main() -> None:
            holder["loop"] = asyncio.get_running_loop()
            holder["stop"] = asyncio.Event()

            def started(port: int) -> None:
                holder["port"] = port
                ready.set()

            await _run_server(server, 0, started, holder["stop"])

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced by the waiting caller
            holder["error"] = exc
            ready.set()

    thread = threading.Thread(target=thread_main, name="openai-test-server", daemon=True)
    thread.start()
    if not ready.wait(10) or "error" in holder:
        raise RuntimeError(f"test server did not start: {holder.get('error')!r}")
    try:
        yield ServerHandle(holder["port"])
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(10)


@contextlib.contextmanager
def _serve_subprocess(config: ServerConfig) -> Iterator[ServerHandle]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "synthbench.testing.openai_server",
            "--config-json",
            json.dumps(config.to_json()),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("listening "):
            raise RuntimeError(f"test server subprocess did not start (said {line!r})")
        yield ServerHandle(int(line.split()[1]))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible test server on loopback.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=None, help="seconds per answered chat request")
    parser.add_argument("--capacity", type=int, default=None, help="concurrent slots; 429 beyond")
    parser.add_argument("--retry-after", default=None, help="Retry-After header on capacity 429s")
    parser.add_argument("--config-json", default=None, help="a full ServerConfig as JSON")
    args = parser.parse_args(argv)
    config = ServerConfig()
    if args.config_json:
        config.update(json.loads(args.config_json))
    if args.latency is not None:
        config.latency_s = args.latency
    if args.capacity is not None:
        config.capacity = args.capacity
    if args.retry_after is not None:
        config.overflow_retry_after = args.retry_after

    def started(port: int) -> None:
        print(f"listening {port} http://127.0.0.1:{port}/v1", flush=True)

    async def run() -> None:
        await _run_server(OpenAITestServer(config), args.port, started, asyncio.Event())

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
