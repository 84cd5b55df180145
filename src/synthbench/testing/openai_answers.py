"""What the fake OpenAI server answers: its configuration, the deterministic chat completion for a request, and
the error bodies of its faults (shared by the chat and batch routes)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FAULT_KINDS = ("429", "429-ra", "500", "503", "timeout", "reset", "malformed", "empty", "401", "400", "404")
BILLED_FAULTS = (
    "malformed",
    "empty",
)  # 200s the endpoint computed (and billed) but that carry no usable answer


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
    answer_text: str | None = None  # every answer's text ('{digest}' → the request's); e.g. JSON with a label
    honour_response_format: bool = True  # answer a json_schema response_format as JSON; False: ignore it

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


def response_format_error(body: dict[str, Any]) -> str | None:
    """Why ``body``'s ``response_format`` would get a 400 from OpenAI, or None. Also accepted: llama-cpp-python's
    ``{"type": "json_object", "schema": {...}}``."""
    fmt = body.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        return "Invalid value for 'response_format.type'"
    spec = fmt.get("json_schema")
    if fmt["type"] == "json_schema" and not (
        isinstance(spec, dict)
        and re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", str(spec.get("name", "")))
        and isinstance(spec.get("schema"), dict)
    ):
        return "Invalid 'response_format.json_schema': needs a name (a-z, A-Z, 0-9, _, -) and a schema"
    return None


def answer_content(
    body: dict[str, Any], config: ServerConfig, fingerprint: str, default: str
) -> tuple[str, bool | None]:
    """The content answering ``body``: ``config.answer_text`` (else ``default``), as ``{"<property>": text}``
    JSON when the request carries a JSON schema with a string property (as a constraining server would answer),
    and whether that text matches the property's ``pattern`` (None: no pattern checked)."""
    text = default if config.answer_text is None else config.answer_text.replace("{digest}", fingerprint[:12])
    fmt = body.get("response_format") or {}
    schema = (
        (fmt.get("json_schema") or {}).get("schema")
        if fmt.get("type") == "json_schema"
        else fmt.get("schema")
    )
    if not config.honour_response_format or not isinstance(schema, dict):
        return text, None
    strings = [(k, v) for k, v in (schema.get("properties") or {}).items() if v.get("type") == "string"]
    if not strings:
        return text, None
    name, prop = strings[0]
    matched = None if "pattern" not in prop else re.search(prop["pattern"], text) is not None
    return json.dumps({name: text}), matched


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


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(payload).encode(), content_type="application/json", headers=headers
    )
