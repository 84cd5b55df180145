"""A real OpenAI-compatible HTTP server on loopback, for tests and benchmarks (stdlib asyncio, no framework).

It speaks HTTP/1.1 with keep-alive on a real socket, so the real ``openai`` client talks to it exactly as it
talks to api.openai.com, vLLM or llama.cpp's server. Routes:

- ``POST /v1/chat/completions``: a deterministic answer derived from the messages and sampling params, with
  ``usage`` token counts (prompt ≈ chars/4, completion = words, capped at ``max_tokens``);
- ``GET /v1/models``; ``POST /v1/files`` (multipart), ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``;
- ``POST /v1/batches``, ``GET /v1/batches/{id}`` (a batch completes after ``batch_polls`` polls);
- control: ``GET /_control/stats``, ``POST /_control/config`` (partial ``ServerConfig`` as JSON),
  ``POST /_control/reset`` (zero the counters and the request numbering).

Behaviour is set by ``ServerConfig``: latency, capacity (concurrent slots; beyond them a 429, with or without
``Retry-After``, or a queue as vLLM does), and faults, either scripted by chat request number (1-based, in
arrival order) or drawn with a seeded RNG. Fault kinds: ``429`` (no Retry-After), ``429-ra`` (Retry-After:
``retry_after``), ``500``, ``503``, ``timeout`` (say nothing for ``hang_s``, then drop the connection),
``reset`` (TCP RST without a response), ``malformed`` (200 with a truncated JSON body), ``empty`` (200 with
``choices: []``), ``401``, ``400``, ``404``.

It counts chat requests answered with a 200 and the distinct request fingerprints it answered: after a run,
``answered == fingerprints`` means no request was answered twice.

Use ``serve(config)`` (a context manager; in a background thread, or ``in_process=False`` for a subprocess
that keeps the server off the client's CPU) or run ``python tests/openai_server.py --latency 0.2 --capacity
64``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

FAULT_KINDS = ("429", "429-ra", "500", "503", "timeout", "reset", "malformed", "empty", "401", "400", "404")


@dataclass
class ServerConfig:
    latency_s: float = 0.0  # seconds each answered chat request takes
    capacity: int | None = None  # concurrent chat requests in service; None = unlimited
    overflow: str = "reject"  # beyond capacity: "reject" (429) or "queue" (wait for a slot, as vLLM does)
    overflow_retry_after: str | None = None  # Retry-After header on capacity 429s; None = no header
    faults: dict[int, str] = field(default_factory=dict)  # chat request number (1-based) → fault kind
    fault_rates: dict[str, float] = field(default_factory=dict)  # fault kind → probability per request
    seed: int = 0  # seeds the fault RNG
    retry_after: str = "1"  # Retry-After of "429-ra" faults: seconds or an HTTP-date
    hang_s: float = 3.0  # "timeout" fault: silence before the connection is dropped
    api_key: str | None = None  # when set, any other bearer token gets a 401
    model: str | None = None  # model name to report; None = echo the request's
    batch_polls: int = 1  # GET /v1/batches/{id} calls before a batch completes
    batch_fail_ids: list[str] = field(default_factory=list)  # custom_ids that fail once, in the next batch

    def update(self, fields: dict[str, Any]) -> None:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(fields) - names
        if unknown:
            raise ValueError(f"unknown ServerConfig fields: {sorted(unknown)}")
        for name, value in fields.items():
            if name == "faults":
                value = {int(k): str(v) for k, v in (value or {}).items()}
            setattr(self, name, value)
        for kind in [*self.faults.values(), *self.fault_rates]:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; one of {FAULT_KINDS}")

    def to_json(self) -> dict[str, Any]:
        payload = dataclasses.asdict(self)
        payload["faults"] = {str(k): v for k, v in self.faults.items()}
        return payload


# -- deterministic answers ---------------------------------------------------------------------------------


def request_fingerprint(body: dict[str, Any]) -> str:
    """What determines an answer: model, messages and sampling params."""
    fields = {k: body.get(k) for k in ("model", "messages", "seed", "temperature", "top_p", "max_tokens")}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def chat_completion(
    body: dict[str, Any], *, number: int, model: str | None = None, fingerprint: str | None = None
) -> dict[str, Any]:
    """The deterministic chat.completion object answering ``body`` (``fingerprint``: its
    ``request_fingerprint``, when the caller has it already)."""
    messages = body.get("messages") or []
    digest = fingerprint or request_fingerprint(body)
    last_user = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
    words = f"answer {digest[:12]} to: {last_user}".split()
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    finish = "stop"
    if limit is not None and len(words) > int(limit):
        words, finish = words[: int(limit)], "length"
    chars = sum(len(str(m.get("content", ""))) for m in messages)
    prompt_tokens = chars // 4 + 3 * len(messages) + 1
    return {
        "id": f"chatcmpl-{number:08d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model or body.get("model") or "test-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": " ".join(words)},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
        },
    }


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


_FAULT_STATUS = {
    "429": (429, _error("Rate limit reached for requests", "requests", "rate_limit_exceeded")),
    "500": (500, _error("The server had an error while processing your request", "server_error")),
    "503": (503, _error("The engine is currently overloaded", "server_error")),
    "401": (401, _error("Incorrect API key provided", "invalid_request_error", "invalid_api_key")),
    "400": (400, _error("Invalid value for 'temperature'", "invalid_request_error")),
    "404": (404, _error("The model does not exist", "invalid_request_error", "model_not_found")),
}


@dataclass
class _Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    fingerprint: str | None = None  # set on a chat answer: counted once the bytes are written


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Response:
    return _Response(status, json.dumps(payload).encode(), headers or {})


class _Abort(Exception):
    """Drop the connection without a response (``rst=True``: with a TCP reset)."""

    def __init__(self, rst: bool) -> None:
        self.rst = rst


class OpenAITestServer:
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
            "arrivals": list(self.arrivals),
            "cpu_s": time.process_time(),  # this process's CPU seconds (server + whatever shares it)
        }

    # -- HTTP/1.1 plumbing ----------------------------------------------------------------------------------

    async def handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                # The request line and headers in one read (one await, not one per header line).
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                method, target, _version = head[0].split()
                headers: dict[str, str] = {}
                for line in head[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await self._read_body(reader, headers)
                try:
                    response = await self.route(method, target.split("?", 1)[0], headers, body)
                except _Abort as abort:
                    _drop(writer, rst=abort.rst)
                    return
                keep_alive = headers.get("connection", "").lower() != "close"
                writer.write(_encode(response, keep_alive))
                await writer.drain()
                if response.fingerprint is not None:
                    self._count_answer(response.fingerprint)
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            return  # the client hung up (between requests: an empty partial read) or sent garbage
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int((await reader.readline()).split(b";")[0].strip(), 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
        length = int(headers.get("content-length") or 0)
        return await reader.readexactly(length) if length else b""

    def _count_answer(self, fingerprint: str) -> None:
        self.answered += 1
        self.fingerprints.add(fingerprint)

    # -- routes ---------------------------------------------------------------------------------------------

    async def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Response:
        if path.startswith("/_control/"):
            return self._control(method, path, body)
        if (
            self.config.api_key is not None
            and headers.get("authorization") != f"Bearer {self.config.api_key}"
        ):
            return _json(401, _FAULT_STATUS["401"][1])
        if method == "POST" and path == "/v1/chat/completions":
            return await self._chat(body)
        if method == "GET" and path == "/v1/models":
            model = self.config.model or "test-model"
            data = [{"id": model, "object": "model", "created": 0, "owned_by": "synthbench-tests"}]
            return _json(200, {"object": "list", "data": data})
        if method == "POST" and path == "/v1/files":
            return self._upload(headers, body)
        if method == "GET" and path.startswith("/v1/files/"):
            file_id, _, rest = path[len("/v1/files/") :].partition("/")
            stored = self.files.get(file_id)
            if stored is None:
                return _json(404, _error(f"No such File object: {file_id}", "invalid_request_error"))
            if rest == "content":
                return _Response(200, stored["data"], content_type="application/octet-stream")
            return _json(200, _file_object(file_id, stored))
        if method == "POST" and path == "/v1/batches":
            return self._create_batch(json.loads(body or b"{}"))
        if method == "GET" and path.startswith("/v1/batches/"):
            return self._poll_batch(path[len("/v1/batches/") :])
        return _json(404, _error(f"Unknown route {method} {path}", "invalid_request_error"))

    def _control(self, method: str, path: str, body: bytes) -> _Response:
        if path == "/_control/stats":
            return _json(200, self.stats())
        if method == "POST" and path == "/_control/config":
            self.config.update(json.loads(body or b"{}"))
            self._rng = random.Random(self.config.seed)
            return _json(200, self.config.to_json())
        if method == "POST" and path == "/_control/reset":
            self.reset()
            return _json(200, {"ok": True})
        return _json(404, _error(f"Unknown control route {path}", "invalid_request_error"))

    def _pick_fault(self, number: int) -> str | None:
        if number in self.config.faults:
            return self.config.faults[number]
        for kind, rate in sorted(self.config.fault_rates.items()):
            if self._rng.random() < rate:
                return kind
        return None

    async def _chat(self, body: bytes) -> _Response:
        self.chat_requests += 1
        number = self.chat_requests
        self.arrivals.append(time.monotonic())
        try:
            request = json.loads(body)
        except ValueError:
            return _json(
                400, _error("We could not parse the JSON body of your request", "invalid_request_error")
            )
        fault = self._pick_fault(number)
        if fault is not None:
            self.faults_injected[fault] = self.faults_injected.get(fault, 0) + 1
            return await self._fault(fault)
        cfg = self.config
        if cfg.capacity is not None and cfg.overflow == "reject" and self.in_service >= cfg.capacity:
            self.rejected_capacity += 1
            headers = {} if cfg.overflow_retry_after is None else {"Retry-After": cfg.overflow_retry_after}
            return _json(429, _FAULT_STATUS["429"][1], headers)
        async with self._slot():
            self.in_service += 1
            self.max_in_service = max(self.max_in_service, self.in_service)
            try:
                if cfg.latency_s > 0:
                    await asyncio.sleep(cfg.latency_s)
            finally:
                self.in_service -= 1
        fingerprint = request_fingerprint(request)
        response = _json(
            200, chat_completion(request, number=number, model=cfg.model, fingerprint=fingerprint)
        )
        response.fingerprint = fingerprint
        return response

    def _slot(self) -> contextlib.AbstractAsyncContextManager[Any]:
        cfg = self.config
        if cfg.capacity is None or cfg.overflow != "queue":
            return contextlib.nullcontext()
        if self._slots is None or self._slots_size != cfg.capacity:
            self._slots, self._slots_size = asyncio.Semaphore(cfg.capacity), cfg.capacity
        return self._slots

    async def _fault(self, kind: str) -> _Response:
        if kind == "reset":
            raise _Abort(rst=True)
        if kind == "timeout":
            await asyncio.sleep(self.config.hang_s)
            raise _Abort(rst=False)
        if kind == "malformed":
            return _Response(200, b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"ind')
        if kind == "empty":
            payload = {
                "id": "chatcmpl-empty",
                "object": "chat.completion",
                "created": 0,
                "model": "test-model",
            }
            return _json(200, {**payload, "choices": [], "usage": None})
        if kind == "429-ra":
            return _json(429, _FAULT_STATUS["429"][1], {"Retry-After": self.config.retry_after})
        status, payload = _FAULT_STATUS[kind]
        return _json(status, payload)

    # -- files and batches ----------------------------------------------------------------------------------

    def _upload(self, headers: dict[str, str], body: bytes) -> _Response:
        fields = _parse_multipart(headers.get("content-type", ""), body)
        if "file" not in fields:
            return _json(400, _error("Missing file", "invalid_request_error"))
        filename, data = fields["file"]
        file_id = f"file-{len(self.files) + 1:06d}"
        purpose = fields.get("purpose", ("", b""))[1].decode()
        self.files[file_id] = {"data": data, "filename": filename or "upload.jsonl", "purpose": purpose}
        return _json(200, _file_object(file_id, self.files[file_id]))

    def _store_file(self, data: bytes, filename: str, purpose: str) -> str:
        file_id = f"file-{len(self.files) + 1:06d}"
        self.files[file_id] = {"data": data, "filename": filename, "purpose": purpose}
        return file_id

    def _create_batch(self, request: dict[str, Any]) -> _Response:
        input_id = request.get("input_file_id")
        if input_id not in self.files:
            return _json(404, _error(f"No such File object: {input_id}", "invalid_request_error"))
        self.batches_created += 1
        batch_id = f"batch_{self.batches_created:06d}"
        now = int(time.time())
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": request.get("endpoint"),
            "errors": None,
            "input_file_id": input_id,
            "completion_window": request.get("completion_window"),
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + 86400,
            "completed_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": request.get("metadata"),
            "_polls": 0,
        }
        return _json(200, _public(self.batches[batch_id]))

    def _poll_batch(self, batch_id: str) -> _Response:
        batch = self.batches.get(batch_id)
        if batch is None:
            return _json(404, _error(f"No such batch: {batch_id}", "invalid_request_error"))
        batch["_polls"] += 1
        if batch["status"] in ("validating", "in_progress"):
            if batch["_polls"] >= self.config.batch_polls:
                self._complete_batch(batch)
            else:
                batch["status"], batch["in_progress_at"] = "in_progress", int(time.time())
        return _json(200, _public(batch))

    def _complete_batch(self, batch: dict[str, Any]) -> None:
        lines = [json.loads(x) for x in self.files[batch["input_file_id"]]["data"].splitlines() if x.strip()]
        out, err = [], []
        for i, line in enumerate(lines, start=1):
            custom_id = line["custom_id"]
            if custom_id in self.config.batch_fail_ids:
                self.config.batch_fail_ids.remove(custom_id)
                self.batch_lines_failed += 1
                response = {"status_code": 500, "request_id": f"req_{i}", "body": _FAULT_STATUS["500"][1]}
                err.append(
                    {"id": f"batch_req_{i}", "custom_id": custom_id, "response": response, "error": None}
                )
                continue
            body = chat_completion(line["body"], number=i, model=self.config.model)
            self.batch_lines_answered += 1
            response = {"status_code": 200, "request_id": f"req_{i}", "body": body}
            out.append({"id": f"batch_req_{i}", "custom_id": custom_id, "response": response, "error": None})
        now = int(time.time())
        batch.update(status="completed", completed_at=now, in_progress_at=batch["in_progress_at"] or now)
        batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}
        if out:
            data = "".join(json.dumps(x) + "\n" for x in out).encode()
            batch["output_file_id"] = self._store_file(data, f"{batch['id']}_output.jsonl", "batch_output")
        if err:
            data = "".join(json.dumps(x) + "\n" for x in err).encode()
            batch["error_file_id"] = self._store_file(data, f"{batch['id']}_error.jsonl", "batch_output")


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if not k.startswith("_")}


def _file_object(file_id: str, stored: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": len(stored["data"]),
        "created_at": int(time.time()),
        "filename": stored["filename"],
        "purpose": stored["purpose"],
        "status": "processed",
    }


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """name → (filename, bytes) for each part of a multipart/form-data body."""
    boundary = next(
        (p.split("=", 1)[1].strip('"') for p in content_type.split(";") if p.strip().startswith("boundary=")),
        None,
    )
    if boundary is None:
        return {}
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in body.split(b"--" + boundary.encode()):
        part = part.removeprefix(b"\r\n")
        if not part or part.startswith(b"--"):
            continue
        head, _, data = part.partition(b"\r\n\r\n")
        data = data.removesuffix(b"\r\n")
        disposition = next(
            (
                h
                for h in head.decode("utf-8", "replace").split("\r\n")
                if h.lower().startswith("content-disposition")
            ),
            "",
        )
        params = {}
        for item in disposition.split(";")[1:]:
            key, _, value = item.strip().partition("=")
            params[key] = value.strip('"')
        if "name" in params:
            fields[params["name"]] = (params.get("filename"), data)
    return fields


_REASONS = {status.value: status.phrase for status in HTTPStatus}


def _encode(response: _Response, keep_alive: bool) -> bytes:
    reason = _REASONS[response.status]
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        f"x-request-id: req_{time.monotonic_ns()}",
        *(f"{k}: {v}" for k, v in response.headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


def _drop(writer: asyncio.StreamWriter, *, rst: bool) -> None:
    sock = writer.get_extra_info("socket")
    if rst and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


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
    tasks: set[asyncio.Task[None]] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await server.handle_connection(reader, writer)
        except asyncio.CancelledError:
            pass  # shutting down: end quietly
        finally:
            tasks.discard(task)

    listener = await asyncio.start_server(on_connect, "127.0.0.1", port, backlog=1024, reuse_address=True)
    started(listener.sockets[0].getsockname()[1])
    try:
        await stop.wait()
    finally:
        listener.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await listener.wait_closed()


@contextlib.contextmanager
def serve(config: ServerConfig | None = None, *, in_process: bool = True) -> Iterator[ServerHandle]:
    """Run the server on a free loopback port for the duration of the ``with`` block.

    ``in_process=True``: an asyncio loop in a daemon thread of this process. ``in_process=False``: a
    subprocess (``python tests/openai_server.py``), so that the server does not compete with the client for
    the GIL (benchmarks)."""
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
        [sys.executable, __file__, "--config-json", json.dumps(config.to_json())],
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
