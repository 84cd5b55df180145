"""What an endpoint's answer means: a chat completion parsed into a :class:`Completion` (or rejected as
unusable), ``Retry-After`` read, and any failure classified as retryable or not. Shared by the synchronous
client (:mod:`synthbench.generation.client`) and the Batch API path (:mod:`synthbench.generation.batch`)."""

from __future__ import annotations

import email.utils
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import openai

from synthbench.generation.journal import Completion


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait per ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP-date); None if absent."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            parsed = email.utils.parsedate_tz(value) if name == "retry-after" else None
            if parsed is None:
                continue
            seconds = email.utils.mktime_tz(parsed) - time.time()
        if math.isfinite(seconds):
            return max(0.0, seconds)
    return None


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name)


def completion_from_response(response: Any, latency_s: float, default_model: str) -> Completion:
    """A ``Completion`` from a chat.completion (an SDK object, or its JSON as a dict in Batch API output).
    Raises ``UnusableResponse`` when it has no choices or is not a chat completion at all."""
    try:
        choices = _field(response, "choices")
        if not choices:
            raise UnusableResponse("empty_choices")
        choice = choices[0]
        finish = _field(choice, "finish_reason")
        message = _field(choice, "message")
        text = None if message is None else _field(message, "content")
        usage = _field(response, "usage")
        model = _field(response, "model")
        prompt_tokens = None if usage is None else _field(usage, "prompt_tokens")
        completion_tokens = None if usage is None else _field(usage, "completion_tokens")
    except (AttributeError, TypeError, IndexError, KeyError):
        raise UnusableResponse("malformed_json") from None
    if not isinstance(text, (str, type(None))):
        raise UnusableResponse("malformed_json")
    if text is None:
        if finish != "content_filter":
            raise UnusableResponse("empty_choices")
        text = ""  # a refusal is an answer: record it, the filters drop it
    return Completion(
        text=text,
        prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else 0,
        completion_tokens=completion_tokens if isinstance(completion_tokens, int) else 0,
        finish_reason=finish if isinstance(finish, str) else None,
        model=model if isinstance(model, str) and model else default_model,
        latency_s=latency_s,
    )


def _dropped_not_timed_out(exc: BaseException) -> bool:
    """Whether an ``APITimeoutError`` was in fact a dropped connection: the aiohttp transport reports every
    ``aiohttp.ClientConnectionError`` (a reset, a server hanging up) as ``httpx.ConnectTimeout``. Both are
    retried alike; this only keeps the retry reason right."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__
    if any(isinstance(e, TimeoutError) for e in chain):
        return False
    return any(isinstance(e, ConnectionError) or type(e).__module__.startswith("aiohttp") for e in chain[1:])


class UnusableResponse(Exception):
    """A 200 whose body is not a usable chat completion (retryable)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Failure:
    reason: str  # http_429, http_503, timeout, connection, malformed_json, empty_choices, http_401, …
    retryable: bool
    retry_after: float | None = None
    status: int | None = None


def classify_error(exc: BaseException) -> _Failure | None:
    """What went wrong with one call, or None for an exception that is not the endpoint's doing."""
    if isinstance(exc, UnusableResponse):
        return _Failure(exc.reason, True)
    if isinstance(exc, openai.APITimeoutError):
        return _Failure("connection" if _dropped_not_timed_out(exc) else "timeout", True)
    if isinstance(exc, openai.APIConnectionError):
        return _Failure("connection", True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retry_after = parse_retry_after(exc.response.headers)
        retryable = status in (408, 409, 429) or status >= 500
        return _Failure(f"http_{status}", retryable, retry_after, status)
    if isinstance(exc, (openai.APIResponseValidationError, json.JSONDecodeError, UnicodeDecodeError)):
        return _Failure("malformed_json", True)
    return None
