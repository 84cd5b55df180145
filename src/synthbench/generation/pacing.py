"""Pacing of requests to an endpoint: an adaptive in-flight limit (AIMD on 429s and rising latency) and token
buckets for requests and tokens per minute. Pure asyncio; no knowledge of HTTP or the journal."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque


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
            elif waiter in self._waiters:  # ``_wake`` may have dropped it already (a cancelled future)
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


def backoff_delay(
    attempt: int, retry_after: float | None, base_s: float, max_s: float, rng: random.Random
) -> float:
    """Seconds before retry ``attempt`` (1-based): the server's Retry-After plus up to 10% jitter (so that
    rejected requests do not return together), else full jitter U(0, base·2^(attempt-1)) capped at ``max_s``."""
    if retry_after is not None:
        return retry_after * (1.0 + 0.1 * rng.random())
    return rng.uniform(0.0, min(max_s, base_s * 2.0 ** (attempt - 1)))
