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
- retries with exponential backoff and full jitter on 429, 5xx, timeouts and dropped connections; a
  ``Retry-After`` (seconds or HTTP-date) is waited out first. 400/401/403/404 stop the run at once. A 200 that
  is not a usable chat completion (malformed body, empty ``choices``) was paid for: it is journaled as an
  unusable answer (``finish_reason`` ``unusable:<reason>``) and never sent again; the stage's filter drops it;
- an answer is awaited past ``timeout_s`` (up to ``hard_timeout_factor`` × it): a request abandoned at the
  client is still computed and billed by the endpoint, so giving up early would pay for it twice. A
  connection that fails after ``timeout_s`` counts as a timeout;
- leases: the keys this process is about to send are leased in the journal first; keys another live process
  holds are not sent but awaited in the journal (two runs at once pay each request once);
- on cancellation (Ctrl-C, SIGTERM) nothing new is sent and the answers in flight get ``INTERRUPT_GRACE_S`` to
  arrive and be journaled: they are paid for either way;
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
import contextlib
import random
import time
from collections.abc import Callable, Sequence

import openai

from synthbench.errors import BudgetExceeded, ConfigError, EndpointError
from synthbench.generation.cost import Budget, estimate_prompt_tokens, max_output_tokens, worst_case_cost
from synthbench.generation.cost import cost_usd as cost_usd
from synthbench.generation.endpoint import EndpointConfig, chat_body, fatal_error_message, resolve_api_key
from synthbench.generation.endpoint import http_client as _http_client
from synthbench.generation.engine_process import running_engine
from synthbench.generation.journal import Completion, Journal
from synthbench.generation.pacing import AdaptiveConcurrency, TokenBucket, backoff_delay
from synthbench.generation.requests import ChatRequest, ClientStats, OnResult, Outbox
from synthbench.generation.responses import UnusableResponse, classify_error, completion_from_response

__all__ = ["ChatClient", "ChatRequest", "ClientStats", "EndpointConfig"]
MAX_RETRY_AFTER_S = 300.0  # a longer Retry-After (quota exhausted) stops the run instead of sleeping
# What an embedded engine's restart does to a request in flight: a dropped connection, then 503 while loading.
RESTART_FAILURES = frozenset({"connection", "http_503"})
INTERRUPT_GRACE_S = 10.0  # on Ctrl-C/SIGTERM, wait this long for answers in flight (they are paid for)
LEASE_HEARTBEAT_S = 20.0  # how often this process's leases are refreshed while it sends
LEASE_POLL_S = 0.2  # how often keys leased by another process are looked for in the journal


def _forget_task(tasks: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
    """Done-callback: drop the task and collect its exception (a fatal error is kept in ``_failure`` and
    re-raised once; an uncollected copy would make asyncio print a traceback)."""

    def forget(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()

    return forget


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
        self._budget = Budget(config.budget_usd)  # spans all calls of this client
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
        answer, True)``); the rest are leased and sent once per distinct key, and each answer is journaled
        before ``on_result(request, answer, False)`` sees it. Keys another live process leased are awaited.

        Raises ``EndpointError`` (fatal status, or retries exhausted) or ``BudgetExceeded`` after letting the
        requests in flight finish; the journal keeps every answer that arrived, so a re-run resumes."""
        started = time.monotonic()
        self._budget.reserved = 0.0
        self._failure = None
        unique: dict[str, ChatRequest] = {}
        for request in requests:
            unique.setdefault(request.key, request)
        self.stats.requested += len(unique)
        results: dict[str, Completion] = {}
        waiting: list[str] = list(unique)
        awaited: set[str] = set()
        try:
            while waiting:
                self._hand_on_journaled(waiting, unique, results, on_result)
                claimed, held = self.journal.claim([k for k in waiting if k not in results])
                if claimed:
                    try:
                        await self._send_all([unique[k] for k in claimed], results, on_result)
                    finally:
                        self.journal.release([k for k in claimed if k not in results])
                if held and not claimed:
                    await asyncio.sleep(LEASE_POLL_S)  # another process is asking: its answers will come
                awaited.update(held)
                # Everything still unanswered: the held keys, and any key another process journaled between
                # the journal read above and the claim (claim skips it; the next read hands it on).
                waiting = [key for key in waiting if key not in results]
        finally:
            self.stats.waited_for_others += len(awaited)
            self.stats.wall_s += time.monotonic() - started
        return results

    def _hand_on_journaled(
        self,
        keys: list[str],
        unique: dict[str, ChatRequest],
        results: dict[str, Completion],
        on_result: OnResult | None,
    ) -> None:
        for key, completion in self.journal.get_many(keys).items():
            results[key] = completion
            self.stats.cached += 1
            if on_result is not None:
                on_result(unique[key], completion, True)

    def _open_api(self) -> openai.AsyncOpenAI:
        cfg = self.config
        # The SDK's timeout is the hard limit: an answer is awaited past timeout_s, since abandoning it repays it.
        return openai.AsyncOpenAI(
            api_key=self._api_key,
            base_url=cfg.url,
            timeout=cfg.timeout_s * cfg.hard_timeout_factor,
            max_retries=0,
            http_client=_http_client(),
        )

    async def _send_all(
        self, todo: list[ChatRequest], results: dict[str, Completion], on_result: OnResult | None
    ) -> None:
        cfg, limiter, budget = self.config, self._limiter, self._budget
        buckets = (TokenBucket(cfg.rpm) if cfg.rpm else None, TokenBucket(cfg.tpm) if cfg.tpm else None)
        outbox = Outbox(results, on_result)
        tasks: set[asyncio.Task[None]] = set()
        unsent = 0
        self._stopping = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat())
        async with self._open_api() as api:
            try:
                for index, request in enumerate(todo):
                    worst = worst_case_cost(request, cfg)
                    while tasks and self._failure is None and budget.would_exceed(worst):
                        await asyncio.wait(set(tasks), return_when=asyncio.FIRST_COMPLETED)
                    if budget.would_exceed(worst):
                        unsent = len(todo) - index
                        break
                    if self._failure is not None:
                        break
                    await limiter.acquire()
                    if self._failure is not None:
                        limiter.release()
                        break
                    budget.reserved += worst
                    task = asyncio.create_task(self._send(api, request, worst, buckets, outbox))
                    tasks.add(task)
                    task.add_done_callback(_forget_task(tasks))
                while tasks:
                    await asyncio.wait(set(tasks))
            except BaseException:
                # Interrupted: send nothing new, give the answers in flight (paid either way) time to arrive.
                self._stopping.set()
                if tasks:
                    with contextlib.suppress(BaseException):
                        await asyncio.wait(set(tasks), timeout=INTERRUPT_GRACE_S)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            finally:
                heartbeat.cancel()
                self._flush(outbox)  # answers of the last turn (also when cancelled: they arrived)
                self._stopping.set()
                self.stats.concurrency_min = limiter.lowest
                self.stats.concurrency_final = limiter.allowed
        if self._failure is not None:
            raise self._failure
        if unsent:
            raise BudgetExceeded(budget.message(cfg, self.stats.fresh, unsent))

    async def _send(
        self,
        api: openai.AsyncOpenAI,
        request: ChatRequest,
        worst: float,
        buckets: tuple[TokenBucket | None, TokenBucket | None],
        outbox: Outbox,
    ) -> None:
        """One request until answered (holding a limiter slot per attempt, none while backing off); the answer
        then waits in ``outbox`` for its commit."""
        cfg, limiter = self.config, self._limiter
        rpm, tpm = buckets
        tokens = estimate_prompt_tokens(request.messages) + max_output_tokens(request.params)
        holding = True  # the dispatcher acquired our first slot
        attempt = 0
        body = chat_body(cfg, request)
        base = str(api.base_url).rstrip("/")
        url = f"{base}/chat/completions"
        engine = running_engine(base)  # our own embedded engine, which the load watch may restart
        try:
            while True:
                if rpm is not None:
                    await rpm.take(1)
                if tpm is not None:
                    await tpm.take(tokens)
                sent_at = time.monotonic()
                restarts = engine.restarts if engine is not None else 0
                self.stats.calls_made += 1
                try:
                    # client.post: the SDK's documented route for raw requests (same HTTP, auth, timeout and
                    # errors as chat.completions.create without its ~1 ms per-call model construction).
                    response = await api.post(url, cast_to=object, body=body)
                    latency = time.monotonic() - sent_at
                    completion = completion_from_response(response, latency, cfg.model)
                except Exception as exc:
                    failure = classify_error(exc)
                    if failure is None:
                        raise
                    if isinstance(exc, UnusableResponse) or failure.reason == "malformed_json":
                        # A 200 the endpoint billed: journal it as unusable instead of paying again.
                        completion = Completion("", 0, 0, f"unusable:{failure.reason}", cfg.model, 0.0)
                        self.stats.unusable += 1
                        break
                    if failure.reason == "connection" and time.monotonic() - sent_at >= cfg.timeout_s:
                        failure = type(failure)("timeout", True)  # silent past timeout_s, then dropped
                    if not failure.retryable:
                        raise EndpointError(fatal_error_message(cfg, failure.status or 0, exc)) from None
                    if (
                        engine is not None
                        and failure.reason in RESTART_FAILURES
                        and await asyncio.to_thread(engine.settled_restarts) != restarts
                    ):
                        # The engine was restarted under it (threads fitted to the load): not the request's
                        # failure, so no attempt counted and no backoff; the new engine answers now.
                        self.stats.retries["engine_restart"] = self.stats.retries.get("engine_restart", 0) + 1
                        continue
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
            self._budget.spent += cost  # spent now, whenever it is journaled: the budget counts it at once
            outbox.pending.append((request, completion, meta, cost))
            if len(outbox.pending) == 1:
                asyncio.get_running_loop().call_soon(self._flush, outbox)
        except Exception as exc:
            self._stop_with(exc)
            raise
        finally:
            if holding:
                limiter.release()
            self._budget.reserved -= worst

    async def _heartbeat(self) -> None:
        """Refresh this process's leases while it sends: a lease another host cannot check by pid expires
        when its owner stops refreshing it."""
        while True:
            await asyncio.sleep(LEASE_HEARTBEAT_S)
            with contextlib.suppress(Exception):  # a busy journal: the next beat will do
                self.journal.touch_leases()

    def _flush(self, outbox: Outbox) -> None:
        """Journal the answers waiting in ``outbox`` in one transaction, then hand each on. Nothing is handed
        on before its commit; an error stops the run like a fatal endpoint error."""
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
        """Seconds before retry ``attempt``; a Retry-After beyond ``MAX_RETRY_AFTER_S`` stops the run."""
        cfg = self.config
        if retry_after is not None and retry_after > MAX_RETRY_AFTER_S:
            raise EndpointError(
                f"{cfg.endpoint} (model {cfg.model}) asks to wait {retry_after:.0f} s before retrying "
                "(rate limit or quota exhausted); wait, check the account's limits, then re-run to resume"
            )
        return backoff_delay(attempt, retry_after, cfg.backoff_base_s, cfg.backoff_max_s, self._rng)
