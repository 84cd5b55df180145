"""Attribute dimensions proposed by the generator itself (AttrPrompt's first step, Yu et al. 2023), for the
attributed mode of a task whose spec declares none (``generate.propose_attributes: true``).

The model is asked once per (task, model, sampling) for a JSON object ``{dimension: [values]}``. The request goes
through the same journaled client as the generation requests, under a key of its own, so the proposal is paid
once, is the same on every re-run, resume and pilot, and lands in the journal for anyone to inspect. An answer
that is not such an object (after stripping a Markdown code fence) is not retried, since it would be the same
answer: the built-in defaults are used instead, and the summary and card say why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from synthbench.generation.requests import ChatRequest
from synthbench.generation.rounds import Answerer
from synthbench.generation.strategies import SampleSlot, request_key
from synthbench.tasks.spec import TaskSpec

PROPOSAL_MODE = "attribute_proposal"  # the journal key's mode: never a generation mode's
MAX_DIMENSIONS = 6
MAX_VALUES = 8
PROPOSAL_PROMPT = (
    "We will write many short texts for this task: {description}\n"
    "The texts belong to these classes: {labels}.\n"
    "Propose 3 to 5 attribute dimensions along which such texts naturally vary (for example subtopic, tone, "
    "length, perspective, setting), each with 3 to 6 short values that fit every class. Answer with one JSON "
    "object only, mapping each dimension to a list of values, e.g. {example}."
)
EXAMPLE = {
    "tone": ["formal", "casual"]
}  # the format's example: an answer that merely repeats it is no proposal
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Proposal:
    """What came of the proposal: ``attributes`` (None: unusable, defaults apply), the journal ``key``, the
    ``model`` asked, and ``note`` (one line for the card: used, or why not)."""

    key: str
    model: str
    attributes: dict[str, list[str]] | None
    note: str
    raw: str = field(default="", repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "model": self.model, "attributes": self.attributes, "note": self.note}


def proposal_request(spec: TaskSpec, model_id: str, sampling: dict[str, Any]) -> ChatRequest:
    """The one request that asks for the attributes (its key depends on the task, model, sampling and prompt)."""
    labels = "; ".join(f"{label.name} ({label.description})" for label in spec.labels)
    user = PROPOSAL_PROMPT.format(
        description=spec.description.strip(), labels=labels, example=json.dumps(EXAMPLE)
    )
    messages = [{"role": "system", "content": spec.prompt.context}, {"role": "user", "content": user}]
    params = {**sampling, "max_tokens": 400}
    key = request_key(spec.name, PROPOSAL_MODE, SampleSlot("*", 0), model_id, params, messages)
    meta = {"task": spec.name, "mode": PROPOSAL_MODE, "label": "*", "index": 0, "model": model_id}
    return ChatRequest(key=key, messages=messages, params=params, meta=meta)


def parse_proposal(text: str) -> tuple[dict[str, list[str]] | None, str]:
    """(dimension → values, "") for a usable answer, else (None, why): a JSON object of 1–6 dimensions, each a
    list of 2–8 distinct non-empty strings (values trimmed; extra dimensions or values are cut, not refused)."""
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text.strip()
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        return None, "the answer holds no JSON object"
    try:
        data = json.loads(body[start : end + 1])
    except ValueError as exc:
        return None, f"the answer is not valid JSON ({exc.msg})"
    if not isinstance(data, dict):
        return None, "the answer is not a JSON object"
    out: dict[str, list[str]] = {}
    for dimension, values in list(data.items())[:MAX_DIMENSIONS]:
        if not isinstance(values, list):
            continue
        kept = list(dict.fromkeys(str(v).strip() for v in values if isinstance(v, str | int | float)))
        kept = [v for v in kept if v][:MAX_VALUES]
        if str(dimension).strip() and len(kept) >= 2:
            out[str(dimension).strip()] = kept
    if not out:
        return None, "no dimension has at least two values"
    if out == EXAMPLE:
        return None, "it only repeats the prompt's example"
    return out, ""


def propose_attributes(spec: TaskSpec, client: Answerer, model_id: str, sampling: dict[str, Any]) -> Proposal:
    """Ask (or read from the journal) the model's proposal for ``spec``."""
    request = proposal_request(spec, model_id, sampling)
    answer = client.run([request])[request.key]
    attributes, why = parse_proposal(answer.text)
    note = (
        f"proposed by the model (journal key {request.key[:12]})"
        if attributes
        else f"the model's proposal was unusable ({why}): built-in defaults"
    )
    return Proposal(request.key, model_id, attributes, note, answer.text)


def with_attributes(spec: TaskSpec, attributes: dict[str, list[str]]) -> TaskSpec:
    """``spec`` with ``prompt.attributes`` set (so the prompt id, which hashes them, names the proposal)."""
    prompt = spec.prompt.model_copy(update={"attributes": attributes})
    return spec.model_copy(update={"prompt": prompt})
