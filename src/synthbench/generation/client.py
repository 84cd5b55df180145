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
event-loop turn are journaled in one transaction, then handed on. The pacing primitives live in
:mod:`synthbench.generation.pacing`; parsing answers and classifying failures in
:mod:`synthbench.generation.responses`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import openai

from synthbench.errors import BudgetExceeded, ConfigError, EndpointError
from synthbench.generation.journal import Completion, Journal
from synthbench.generation.pacing import AdaptiveConcurrency, TokenBucket
from synthbench.generation.responses import classify_error, completion_from_response

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
            self._stop_with(exc)
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
            self._stop_with(exc)

    def _stop_with(self, exc: Exception) -> None:
        """Keep the run's first failure (the dispatcher sees it before it sends anything else) and stop."""
        if self._failure is None:
            self._failure = exc
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
