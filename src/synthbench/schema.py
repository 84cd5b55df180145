"""The one strict pydantic base of every validated structure (params sections, task specs, stage records) and
the one formatter of its validation errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError


class StrictModel(BaseModel):
    """Unknown keys are refused (``extra="forbid"``), so a misspelt or renamed key fails loudly instead of
    silently reading as its default."""

    model_config = ConfigDict(extra="forbid")


_SECRET_HINTS = ("key", "token", "secret", "password", "url")


def first_error(exc: ValidationError, prefix: str = "") -> str:
    """One line for the first error of ``exc``: ``unknown key 'a.b'; remove it or check its spelling``,
    ``missing key 'a.b'; add it`` or ``key 'a.b': <message> (got <value>)``. The offending value is echoed only
    when it is a short scalar of a key that cannot hold a credential. A whole-model check (no key) returns its
    message alone."""
    first = exc.errors()[0]
    key = ".".join(str(part) for part in (*([prefix] if prefix else []), *first["loc"]))
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"unknown key {key!r}; remove it or check its spelling"
    if first["type"] == "missing":
        return f"missing key {key!r}; add it"
    if not first["loc"]:
        return message
    value = first.get("input")
    secret = any(hint in key.lower() for hint in _SECRET_HINTS)
    printable = isinstance(value, (str, int, float, bool)) and len(str(value)) <= 60
    return f"key {key!r}: {message}" + (f" (got {value!r})" if printable and not secret else "")
