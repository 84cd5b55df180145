"""Structured output: the task's text format enforced by the endpoint (``generate.endpoint.structured_output``).

The request carries an OpenAI-compatible ``response_format`` of type ``json_schema`` (accepted by OpenAI, vLLM
and llama.cpp's ``llama-server``; the embedded llama-cpp-python server gets its ``json_object`` + ``schema``
dialect): a JSON object with one string property, ``text``, whose ``pattern`` is the
task's format (:func:`synthbench.tasks.textformat.format_pattern`), so a constraining decoder can only emit
texts that carry it. The answer ``{"text": "..."}`` is read back to its text before the quality filters.

Only tasks that declare a ``text_format`` are asked this way: for the others the request (and its journal key)
stays what it was.
"""

from __future__ import annotations

import json
from typing import Any

from synthbench.config import EndpointParams
from synthbench.tasks.spec import TaskSpec
from synthbench.tasks.textformat import format_pattern

SCHEMA_NAME = "marked_text"  # OpenAI: a-z, A-Z, 0-9, _ and -, at most 64 characters
JSON_OVERHEAD_TOKENS = 16  # '{"text": "' + '"}' and escapes: added to the default max_tokens


def response_format(spec: TaskSpec, endpoint: EndpointParams) -> dict[str, Any] | None:
    """The ``response_format`` of ``spec``'s requests, or None (``endpoint.structured_output`` is off, or the
    task declares no ``text_format``)."""
    if not endpoint.structured_output or spec.text_format is None:
        return None
    text = {
        "type": "string",
        "description": spec.text_format.prompt(),
        "pattern": format_pattern(spec.text_format),
    }
    schema = {
        "type": "object",
        "properties": {"text": text},
        "required": ["text"],
        "additionalProperties": False,
    }
    if endpoint.kind == "embedded" and endpoint.engine == "llama-cpp-python":
        # llama-cpp-python's server knows only json_object, with the schema beside it (it compiles it to a
        # grammar with the same converter as llama.cpp); it refuses type json_schema.
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": schema, "strict": True}}


def text_of_answer(raw: str) -> str | None:
    """The ``text`` of a structured answer ``{"text": "..."}``; None when ``raw`` is not a JSON object of
    exactly that shape (e.g. a server that ignored ``response_format``, or an answer cut off by max_tokens)."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or set(parsed) != {"text"} or not isinstance(parsed["text"], str):
        return None
    return parsed["text"]
