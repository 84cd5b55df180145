"""Cost and budget: tokens estimated before a request is sent, dollars from the endpoint's usage, and a budget
that reserves each request's worst case so nothing is sent that could take spending past ``budget_usd``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from synthbench.generation.endpoint import EndpointConfig

DEFAULT_MAX_TOKENS_ESTIMATE = 1024  # worst-case completion tokens when a request sets no max_tokens


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


def worst_case_cost(request: Any, config: EndpointConfig, *, discount: float = 1.0) -> float:
    """USD a ChatRequest could cost at most: estimated prompt tokens plus its completion-token ceiling."""
    return cost_usd(
        estimate_prompt_tokens(request.messages), max_output_tokens(request.params), config, discount=discount
    )


@dataclass
class Budget:
    """Spending against ``limit_usd`` (None: no limit). ``spent`` counts answers that arrived; ``reserved``
    the worst cases of requests in flight."""

    limit_usd: float | None
    spent: float = 0.0
    reserved: float = 0.0

    def would_exceed(self, worst: float) -> bool:
        """Whether sending a request that could cost ``worst`` might take spending past the limit."""
        return self.limit_usd is not None and self.spent + self.reserved + worst > self.limit_usd + 1e-12

    def message(self, config: EndpointConfig, journaled: int, unsent: int) -> str:
        return (
            f"{config.endpoint} (model {config.model}): stopped at the cost budget: spent ${self.spent:.4f} of "
            f"${self.limit_usd or 0:.4f} ({journaled} answers journaled, {unsent} requests not sent); raise "
            "generate.budget_usd or re-run to resume"
        )
