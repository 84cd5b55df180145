"""The endpoint client: answers chat requests from the journal first, sends the rest to any OpenAI-compatible
endpoint (api.openai.com, vLLM, llama.cpp's server) and journals every answer before anyone sees it.

How requests are paced:

- at most ``concurrency`` in flight, under an adaptive limit (AIMD): a 429 cuts it, once per congestion
  event, to the requests the endpoint still held when the rejections came back (a slot-limited server's
  capacity), and halves it when 429s come back before the limit has grown again since the last cut (cutting
  to that level was not enough, e.g. a rate limit); successes grow it back, fast up to 90% of the level that
  overloaded the endpoint, then by about one request per round trip, up to ``concurrency``. Rising latency
  (smoothed latency above 2× the best seen, e.g. vLLM queueing, which never answers 429) cuts it by a quarter;
- requests per minute and tokens per minute through token buckets (tokens estimated as prompt chars/4 +
  ``max_tokens``, as OpenAI counts them against the limit);
- retries with exponential backoff and full jitter on 429, 5xx, timeouts, dropped connections, malformed
  bodies and empty ``choices``; a ``Retry-After`` (seconds or HTTP-date) is waited out first. 400/401/403/404
  stop the run at once;
- a cost budget: each request reserves its worst-case cost before it is sent; nothing is sent that could take
  spent + reserved past ``budget_usd``.

Requests go through the ``openai`` SDK on its aiohttp transport (``openai.DefaultAioHttpClient``, the SDK's
documented option for concurrency; httpx's when aiohttp is not installed): at ~300 requests/s against a
loopback server it costs ~1.0 ms CPU per request where httpx's costs ~1.8 ms (httpcore's pool rescans all its
connections, probing each idle socket, whenever a request starts or ends). Answers that arrive in the same
event-loop turn are journaled in one transaction, then handed on.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import math
import os
import random
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import openai

from synthbench.errors import BudgetExceeded, ConfigError, EndpointError
from synthbench.generation.journal import Completion, Journal

DEFAULT_BASE_URL = "https://api.openai.com/v1"
LOCAL_PLACEHOLDER_KEY = "sk-local"  # sent to a loopback server when no key env var is set
DEFAULT_MAX_TOKENS_ESTIMATE = 1024  # worst-case completion tokens when a request sets no max_tokens
MAX_RETRY_AFTER_S = 300.0  # a longer Retry-After (quota exhausted) stops the run instead of sleeping

OnResult = Callable[["ChatRequest", Completion, bool], None]


@dataclass(frozen=True)
class EndpointConfig:
    """Where and how fast to ask. Prices are USD per 1M tokens; rates are per minute."""

    base_url: str | None  # None → api.openai.com
    model: str
    api_key_env: str | None = (
        "OPENAI_API_KEY"  # NAME of the env var; the key itself is never stored or logged
    )
    timeout_s: float = 60.0
    max_retries: int = 6
    concurrency: int = 8  # upper bound of in-flight requests
    rpm: float | None = None  # requests / minute budget (token bucket)
    tpm: float | None = None  # tokens / minute budget (token bucket; prompt chars/4 + max_tokens)
    price_in_per_mtok: float = 0.0  # USD per 1M prompt tokens
    price_out_per_mtok: float = 0.0  # USD per 1M completion tokens
    budget_usd: float | None = None
    backoff_base_s: float = 0.5  # first retry waits U(0, base); the n-th U(0, base·2^(n-1)), capped below
    backoff_max_s: float = 30.0

    @property
    def endpoint(self) -> str:
        """The base URL requests go to, for messages."""
        return self.base_url or DEFAULT_BASE_URL


@dataclass(frozen=True)
class ChatRequest:
    key: str  # journal key, computed by the caller
    messages: list[dict[str, str]]
    params: dict[str, Any]  # temperature, top_p, max_tokens, seed …, passed to chat.completions.create
    meta: dict[str, Any]  # stored in the journal with the answer


@dataclass
class ClientStats:
    """What a ``ChatClient`` did, summed over its ``complete_all`` / ``run`` calls. Tokens and cost count
    fresh answers only (journal hits cost nothing)."""

    requested: int = 0  # distinct keys asked for
    cached: int = 0  # answered from the journal, no call
    fresh: int = 0  # answered by the endpoint and journaled in this run
    calls_made: int = 0  # HTTP requests sent, retries included
    retries: dict[str, int] = field(default_factory=dict)  # reason → retries (http_429, timeout, …)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    backoff_s: float = 0.0  # summed waits before retries (Retry-After included)
    concurrency_min: int = 0  # lowest adaptive in-flight limit reached
    concurrency_final: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- pure helpers ------------------------------------------------------------------------------------------


def estimate_prompt_tokens(messages: Sequence[dict[str, str]]) -> int:
    """Prompt tokens estimated from characters: chars/4 plus the chat format's few tokens per message."""
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    return math.ceil(chars / 4) + 4 * len(messages) + 3


def max_output_tokens(params: dict[str, Any]) -> int:
    """The completion-token ceiling a request sets (``DEFAULT_MAX_TOKENS_ESTIMATE`` when it sets none)."""
    value = params.get("max_completion_tokens") or params.get("max_tokens")
    return int(value) if value else DEFAULT_MAX_TOKENS_ESTIMATE


def cost_usd(
    prompt_tokens: int, completion_tokens: int, config: EndpointConfig, *, discount: float = 1.0
) -> float:
    """Dollars for the given token counts at ``config``'s prices (``discount`` 0.5 for the Batch API)."""
    dollars = prompt_tokens * config.price_in_per_mtok + completion_tokens * config.price_out_per_mtok
    return dollars / 1e6 * discount


def worst_case_cost(request: ChatRequest, config: EndpointConfig, *, discount: float = 1.0) -> float:
    return cost_usd(
        estimate_prompt_tokens(request.messages), max_output_tokens(request.params), config, discount=discount
    )


def chat_body(config: EndpointConfig, request: ChatRequest) -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions`` for ``request``: its params as they are (so vLLM's and
    llama.cpp's extras such as ``top_k`` or ``min_p`` pass through), the configured model and the messages."""
    params = {k: v for k, v in request.params.items() if k not in ("model", "messages", "stream")}
    return {"model": config.model, "messages": request.messages, **params}


def is_loopback_url(url: str | None) -> bool:
    if not url:
        return False
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def resolve_api_key(config: EndpointConfig) -> str:
    """The key from ``os.environ[config.api_key_env]``; a placeholder for a loopback server without one."""
    key = os.environ.get(config.api_key_env) if config.api_key_env else None
    if key:
        return key
    if is_loopback_url(config.base_url):
        return LOCAL_PLACEHOLDER_KEY
    if not config.api_key_env:
        raise EndpointError(
            f"{config.endpoint}: no API key variable configured; set generate.endpoint.api_key_env to the "
            "name of the environment variable that holds the key"
        )
    raise EndpointError(
        f"{config.endpoint}: environment variable {config.api_key_env} is not set; export it with your API "
        "key (or point generate.endpoint.api_key_env at the variable that holds it)"
    )


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


_SECRET = re.compile(r"\b(sk-[A-Za-z0-9_*\-]{4,}|Bearer\s+\S+)")


def _server_message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    text = str(message or getattr(exc, "message", "") or exc)
    text = " ".join(_SECRET.sub("<redacted>", text).split())
    return text[:160]


def fatal_error_message(config: EndpointConfig, status: int, exc: BaseException | None = None) -> str:
    """One line for a status that retrying cannot fix: what the endpoint said and the fix."""
    where = f"{config.endpoint} (model {config.model})"
    if status in (401, 403):
        source = f"${config.api_key_env}" if config.api_key_env else "the configured key"
        verb = "rejected" if status == 401 else "refused access with"
        return (
            f"{where} {verb} the API key from {source} (HTTP {status}); check that {source} holds a valid "
            "key with access to this model, or fix generate.endpoint"
        )
    detail = f": {_server_message(exc)}" if exc is not None else ""
    if status == 404:
        return (
            f"{where}: model or route not found (HTTP 404{detail}); check generate.model against GET "
            f"{config.endpoint.rstrip('/')}/models and that base_url ends in /v1"
        )
    return f"{where} refused the request (HTTP {status}{detail}); fix the sampling params or messages"


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


# -- pacing ------------------------------------------------------------------------------------------------


class AdaptiveConcurrency:
    """An in-flight limit between 1 and ``maximum`` that adapts to overload signals (AIMD).

    ``overloaded`` (a 429) starts a congestion event unless the rejected request was sent before the last cut
    (then it belongs to that event). Each rejection measures ``ceiling``, the level that overloaded the
    endpoint: the fewest requests still in flight when one of the event's rejections came back, i.e. what the
    endpoint held (a slot-limited server's capacity). An event whose limit has grown by at least one request
    since the last cut cuts the limit to ``ceiling`` (and follows it down as the event's rejections come
    back); one that comes before that regrowth halves the limit, since cutting to ``ceiling`` was not enough
    (a rate limit, an endpoint under load from elsewhere). ``succeeded``: +1 per success while below 90% of
    ``ceiling`` (back to speed within a round trip), then +1/limit per success (≈ +1 per round trip) up to
    ``ceiling``, then a quarter of that to probe for more. Smoothed latency above ``latency_factor`` × the
    best smoothed latency seen (and at least ``min_rise_s`` above it, so that millisecond jitter is no signal)
    cuts the limit to 3/4, at most once per latency."""

    def __init__(
        self, maximum: int, *, latency_factor: float = 2.0, min_rise_s: float = 0.05, alpha: float = 0.1
    ) -> None:
        self.maximum = max(1, int(maximum))
        self.min_rise_s = min_rise_s
        self.recovery = 0.9  # fast growth up to this fraction of the overloading level
        self.probe = 0.25  # growth per round trip past the overloading level
        self.limit = float(self.maximum)
        self.ceiling = float(self.maximum)
        self.in_flight = 0
        self.lowest = self.maximum
        self.latency_factor = latency_factor
        self.alpha = alpha
        self.ewma_s: float | None = None
        self.best_ewma_s = math.inf
        self._samples = 0
        self._last_cut = -math.inf
        self._cut_level = -math.inf  # the limit the last cut left (a later 429 below it + 1 halves)
        self._follow_ceiling = False  # this event cut to the ceiling: later rejections of it lower the limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def allowed(self) -> int:
        return max(1, int(self.limit))

    async def acquire(self) -> None:
        if not self._waiters and self.in_flight < self.allowed:
            self.in_flight += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over as we were cancelled
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.allowed:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1  # handed straight to the waiter
                waiter.set_result(None)

    def overloaded(self, sent_at: float) -> None:
        """A request sent at ``sent_at`` (monotonic) got a 429; call while it still holds its slot."""
        survivors = max(1.0, self.in_flight - 1.0)  # still in flight when it came back: what the server holds
        if sent_at <= self._last_cut:  # same congestion event: refine the ceiling
            self.ceiling = min(self.ceiling, survivors)
            if self._follow_ceiling and self.limit > self.ceiling:
                self.limit = self.ceiling
                self._cut_level = self.limit
                self.lowest = min(self.lowest, self.allowed)
            return
        self.ceiling = min(self.limit, survivors)
        self._follow_ceiling = self.limit >= self._cut_level + 1.0
        self._cut(self.ceiling if self._follow_ceiling else self.limit / 2, time.monotonic())

    def succeeded(self, latency_s: float) -> None:
        self._samples += 1
        self.ewma_s = (
            latency_s if self.ewma_s is None else self.ewma_s + self.alpha * (latency_s - self.ewma_s)
        )
        if self._samples >= 5:
            self.best_ewma_s = min(self.best_ewma_s, self.ewma_s)
        now = time.monotonic()
        slow = self.ewma_s > max(self.latency_factor * self.best_ewma_s, self.best_ewma_s + self.min_rise_s)
        if slow and now - self._last_cut > self.ewma_s:
            self._follow_ceiling = False
            self._cut(self.limit * 0.75, now)
            self.ceiling = self.limit
            return
        if self.limit < self.maximum:
            if self.limit < self.recovery * self.ceiling:
                step = 1.0  # back towards the known-good level: doubles per round trip
            elif self.limit < self.ceiling:
                step = 1.0 / self.limit  # ≈ +1 per round trip
            else:
                step = self.probe / self.limit  # past the level that overloaded: probe gently
            self.limit = min(float(self.maximum), self.limit + step)
            self._wake()

    def _cut(self, new_limit: float, now: float) -> None:
        self.limit = max(1.0, new_limit)
        self._cut_level = self.limit
        self._last_cut = now
        self.lowest = min(self.lowest, self.allowed)


class TokenBucket:
    """``rate_per_min`` units per minute, bursts up to one second's worth. A take larger than the burst waits
    for a full bucket and leaves it in debt, so the average rate holds for any size."""

    def __init__(self, rate_per_min: float) -> None:
        self.rate_s = rate_per_min / 60.0
        self.capacity = max(1.0, self.rate_s)
        self.level = self.capacity
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self, amount: float) -> float:
        """Wait until ``amount`` may go; return the seconds waited."""
        waited = 0.0
        async with self._lock:
            while True:
                now = time.monotonic()
                self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate_s)
                self._stamp = now
                need = min(amount, self.capacity)
                if self.level >= need:
                    self.level -= amount
                    return waited
                delay = (need - self.level) / self.rate_s
                waited += delay
                await asyncio.sleep(delay)


# -- the client --------------------------------------------------------------------------------------------


def _forget_task(tasks: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
    """Done-callback: drop the task and collect its exception. A fatal error is already kept in
    ``ChatClient._failure`` and re-raised once; an uncollected copy would make asyncio print a traceback."""

    def forget(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()

    return forget


def _http_client() -> Any:
    """The SDK's aiohttp transport (``openai.DefaultAioHttpClient``, same defaults as its httpx client), or its
    default httpx client when aiohttp is not installed (``pip install openai[aiohttp]``)."""
    aiohttp_client = getattr(openai, "DefaultAioHttpClient", None)
    if aiohttp_client is not None:
        try:
            return aiohttp_client()
        except RuntimeError:  # the SDK's stand-in when aiohttp is missing
            pass
    return openai.DefaultAsyncHttpxClient()


@dataclass
class _Outbox:
    """Fresh answers of one ``complete_all`` call on their way out: the ones that arrive in one event-loop turn
    wait in ``pending`` until the next turn commits them in one transaction, then each is handed on."""

    results: dict[str, Completion]
    on_result: OnResult | None
    pending: list[tuple[ChatRequest, Completion, dict[str, Any], float]] = field(default_factory=list)


class ChatClient:
    """Answers ``ChatRequest``s: from the journal when it has them, else from the endpoint (journaled)."""

    def __init__(self, config: EndpointConfig, journal: Journal) -> None:
        if config.concurrency < 1 or config.max_retries < 0 or config.timeout_s <= 0:
            raise ConfigError(
                f"{config.endpoint}: concurrency must be ≥ 1, max_retries ≥ 0 and timeout_s > 0 "
                f"(got {config.concurrency}, {config.max_retries}, {config.timeout_s}); fix generate.endpoint"
            )
        self.config = config
        self.journal = journal
        self._api_key = resolve_api_key(config)
        self._rng = random.Random()
        self.stats = ClientStats()
        self._limiter = AdaptiveConcurrency(config.concurrency)  # what it learns carries over to later calls
        self._spent = 0.0  # USD over this client's lifetime: the budget spans all its calls
        self._reserved = 0.0
        self._failure: BaseException | None = None
        self._stopping: asyncio.Event | None = None

    def __repr__(self) -> str:  # never the key
        return f"ChatClient(endpoint={self.config.endpoint!r}, model={self.config.model!r})"

    def run(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> dict[str, Completion]:
        """``complete_all`` from synchronous code."""
        return asyncio.run(self.complete_all(requests, on_result))

    async def complete_all(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> dict[str, Completion]:
        """key → answer for every request. Journaled keys are answered without a call (``on_result(request,
        answer, True)``); the rest are sent once per distinct key, and each answer is journaled before
        ``on_result(request, answer, False)`` sees it and before it is returned.

        Raises ``EndpointError`` (fatal status, or retries exhausted) or ``BudgetExceeded`` after letting the
        requests in flight finish; the journal keeps every answer that arrived, so a re-run resumes."""
        started = time.monotonic()
        self._reserved = 0.0
        self._failure = None
        unique: dict[str, ChatRequest] = {}
        for request in requests:
            unique.setdefault(request.key, request)
        self.stats.requested += len(unique)
        results: dict[str, Completion] = {}
        try:
            cached = self.journal.get_many(list(unique))
            for key, request in unique.items():
                if key in cached:
                    results[key] = cached[key]
                    self.stats.cached += 1
                    if on_result is not None:
                        on_result(request, cached[key], True)
            todo = [request for key, request in unique.items() if key not in cached]
            if todo:
                await self._send_all(todo, results, on_result)
        finally:
            self.stats.wall_s += time.monotonic() - started
        return results

    def _open_api(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=self._api_key,
            base_url=self.config.endpoint,
            timeout=self.config.timeout_s,
            max_retries=0,
            http_client=_http_client(),
        )

    async def _send_all(
        self, todo: list[ChatRequest], results: dict[str, Completion], on_result: OnResult | None
    ) -> None:
        cfg = self.config
        limiter = self._limiter
        buckets = (TokenBucket(cfg.rpm) if cfg.rpm else None, TokenBucket(cfg.tpm) if cfg.tpm else None)
        outbox = _Outbox(results, on_result)
        tasks: set[asyncio.Task[None]] = set()
        unsent = 0
        self._stopping = asyncio.Event()

        async with self._open_api() as api:
            try:
                for index, request in enumerate(todo):
                    worst = worst_case_cost(request, cfg)
                    if cfg.budget_usd is not None:
                        while tasks and self._failure is None and self._over_budget(worst):
                            await asyncio.wait(set(tasks), return_when=asyncio.FIRST_COMPLETED)
                        if self._over_budget(worst):
                            unsent = len(todo) - index
                            break
                    if self._failure is not None:
                        break
                    await limiter.acquire()
                    if self._failure is not None:
                        limiter.release()
                        break
                    self._reserved += worst
                    task = asyncio.create_task(self._send(api, request, worst, limiter, buckets, outbox))
                    tasks.add(task)
                    task.add_done_callback(_forget_task(tasks))
                while tasks:
                    await asyncio.wait(set(tasks))
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            finally:
                self._flush(outbox)  # answers of the last turn (also when cancelled: they arrived)
                self._stopping.set()
                self.stats.concurrency_min = limiter.lowest
                self.stats.concurrency_final = limiter.allowed
        if self._failure is not None:
            raise self._failure
        if unsent:
            raise BudgetExceeded(
                f"{cfg.endpoint} (model {cfg.model}): stopped at the cost budget: spent "
                f"${self._spent:.4f} of ${cfg.budget_usd:.4f} ({self.stats.fresh} answers journaled, "
                f"{unsent} requests not sent); raise generate.budget_usd or re-run to resume"
            )

    def _over_budget(self, worst: float) -> bool:
        budget = self.config.budget_usd
        return budget is not None and self._spent + self._reserved + worst > budget + 1e-12

    async def _send(
        self,
        api: openai.AsyncOpenAI,
        request: ChatRequest,
        worst: float,
        limiter: AdaptiveConcurrency,
        buckets: tuple[TokenBucket | None, TokenBucket | None],
        outbox: _Outbox,
    ) -> None:
        """One request until answered (holding a limiter slot per attempt, none while backing off); the answer
        then waits in ``outbox`` for its commit."""
        cfg = self.config
        rpm, tpm = buckets
        tokens = estimate_prompt_tokens(request.messages) + max_output_tokens(request.params)
        holding = True  # the dispatcher acquired our first slot
        attempt = 0
        body = chat_body(cfg, request)
        url = f"{str(api.base_url).rstrip('/')}/chat/completions"
        try:
            while True:
                if rpm is not None:
                    await rpm.take(1)
                if tpm is not None:
                    await tpm.take(tokens)
                sent_at = time.monotonic()
                self.stats.calls_made += 1
                try:
                    # client.post is the SDK's documented route for raw requests: the same HTTP, auth,
                    # timeout and error types as chat.completions.create, without its per-call transformation
                    # of the params and model construction of the answer (together ~1 ms CPU per request,
                    # 40% of the client's CPU at hundreds of requests/s). cast_to=object: the JSON as parsed.
                    # An absolute URL (which the SDK takes as it is) spares it re-joining the base URL and
                    # the path on every call (~30 µs).
                    response = await api.post(url, cast_to=object, body=body)
                    latency = time.monotonic() - sent_at
                    completion = completion_from_response(response, latency, cfg.model)
                except Exception as exc:
                    failure = classify_error(exc)
                    if failure is None:
                        raise
                    if not failure.retryable:
                        raise EndpointError(fatal_error_message(cfg, failure.status or 0, exc)) from None
                    if failure.reason == "http_429":
                        limiter.overloaded(sent_at)
                    attempt += 1
                    if attempt > cfg.max_retries:
                        raise EndpointError(
                            f"{cfg.endpoint} (model {cfg.model}): request {request.key[:16]} failed "
                            f"{attempt} times (last: {failure.reason}); check the server, raise "
                            "generate.endpoint.max_retries or timeout_s, then re-run to resume"
                        ) from None
                    self.stats.retries[failure.reason] = self.stats.retries.get(failure.reason, 0) + 1
                    delay = self._backoff(attempt, failure.retry_after)
                    limiter.release()
                    holding = False
                    self.stats.backoff_s += delay
                    if await self._stopped_during(delay):
                        return  # the run is stopping: no new attempt
                    await limiter.acquire()
                    holding = True
                    continue
                limiter.succeeded(latency)
                break
            limiter.release()
            holding = False
            cost = cost_usd(completion.prompt_tokens, completion.completion_tokens, cfg)
            meta = {**request.meta, "cost_usd": cost}
            meta.setdefault("model", cfg.model)
            self._spent += cost  # spent now, whenever it is journaled: the budget counts it at once
            outbox.pending.append((request, completion, meta, cost))
            if len(outbox.pending) == 1:
                asyncio.get_running_loop().call_soon(self._flush, outbox)
        except Exception as exc:
            if self._failure is None:
                self._failure = exc  # seen by the dispatcher before it sends anything else
            if self._stopping is not None:
                self._stopping.set()
            raise
        finally:
            if holding:
                limiter.release()
            self._reserved -= worst

    def _flush(self, outbox: _Outbox) -> None:
        """Journal the answers waiting in ``outbox`` in one transaction (group commit: those that arrived in the
        same event-loop turn), then hand each on: stats, results, ``on_result``. Nothing is handed on before its
        commit; an error stops the run like a fatal endpoint error."""
        batch, outbox.pending = outbox.pending, []
        if not batch:
            return
        try:
            self.journal.record_many(
                [(request.key, completion, meta) for request, completion, meta, _ in batch]
            )
            for request, completion, _meta, cost in batch:
                self.stats.fresh += 1
                self.stats.prompt_tokens += completion.prompt_tokens
                self.stats.completion_tokens += completion.completion_tokens
                self.stats.cost_usd += cost
                outbox.results[request.key] = completion
                if outbox.on_result is not None:
                    outbox.on_result(request, completion, False)
        except Exception as exc:
            if self._failure is None:
                self._failure = exc  # seen by the dispatcher before it sends anything else
            if self._stopping is not None:
                self._stopping.set()

    async def _stopped_during(self, delay: float) -> bool:
        """Sleep ``delay`` seconds, waking early if the run is stopping; True when it is."""
        if self._stopping is None:
            await asyncio.sleep(delay)
            return False
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        except asyncio.TimeoutError:
            return False
        return True

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before retry ``attempt`` (1-based): the server's Retry-After (plus up to 10% jitter so that
        rejected requests do not return together), else full jitter U(0, base·2^(attempt-1)) capped."""
        cfg = self.config
        if retry_after is not None:
            if retry_after > MAX_RETRY_AFTER_S:
                raise EndpointError(
                    f"{cfg.endpoint} (model {cfg.model}) asks to wait {retry_after:.0f} s before retrying "
                    "(rate limit or quota exhausted); wait, check the account's limits, then re-run to resume"
                )
            return retry_after * (1.0 + 0.1 * self._rng.random())
        return self._rng.uniform(0.0, min(cfg.backoff_max_s, cfg.backoff_base_s * 2.0 ** (attempt - 1)))
