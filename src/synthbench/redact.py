"""Keys are names, values never travel: the checks on what params may hold (a variable NAME, a URL without
credentials in the way) and the redaction applied to every message, log, card and MLflow param.

Bottom layer: imports nothing of synthbench, so config, generation and the CLI can all use it."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_ENV_NAME = 64
REDACTED = "<redacted>"

# Credentials by shape: OpenAI/Anthropic-style sk-…, bearer tokens, HF/GitHub tokens, key=value in queries.
_SECRET = re.compile(
    r"(\bsk-[A-Za-z0-9_*\-]{4,}|\bBearer\s+\S+|\bhf_[A-Za-z0-9]{10,}|\bgh[pousr]_[A-Za-z0-9]{10,}"
    r"|(?<=[?&;])[^=&\s]*(?:key|token|secret|sig|password|auth)[^=&\s]*=[^&\s'\"]+)",
    re.IGNORECASE,
)
_URL = re.compile(r"\b[a-z][a-z0-9+.\-]*://[^\s'\"<>]+", re.IGNORECASE)
_SECRET_VAR = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)


def _looks_like_token(value: str) -> bool:
    """A long run mixing lower-case letters and digits reads as a credential, not a variable name."""
    return len(value) >= 24 and any(c.islower() for c in value) and sum(c.isdigit() for c in value) >= 4


def check_env_name(value: str | None) -> str | None:
    """``value`` if it is an environment-variable NAME (``^[A-Za-z_][A-Za-z0-9_]*$``, ≤ 64 chars, not
    token-shaped); ValueError otherwise, with a message that never repeats it."""
    if value is None:
        return None
    if not ENV_NAME.match(value) or len(value) > MAX_ENV_NAME or _looks_like_token(value):
        raise ValueError(
            "must be the NAME of an environment variable (letters, digits, _; e.g. OPENAI_API_KEY), never "
            "the key itself; export the key in that variable and remove it from params.yaml"
        )
    return value


def check_base_url(value: str | None) -> str | None:
    """``value`` if it is an http(s) URL with a host and no user:password part; ValueError otherwise (the
    message does not repeat it: it may hold a key)."""
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        _ = parts.port  # ValueError on a non-numeric or out-of-range port
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in value)
    ):
        raise ValueError("must be an http(s) URL such as http://127.0.0.1:8000/v1 (null for api.openai.com)")
    if parts.username or parts.password:
        raise ValueError(
            "must not carry credentials (user:password@); put the key in the variable api_key_env names"
        )
    return value


def redact_url(url: str) -> str:
    """``url`` without user:password, query string and fragment: what may be printed or stored."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return REDACTED
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def _secret_values() -> list[str]:
    """Values of environment variables whose names say they hold a secret (at least 8 chars)."""
    return sorted(
        (v for k, v in os.environ.items() if _SECRET_VAR.search(k) and len(v) >= 8),
        key=len,
        reverse=True,
    )


def redact(text: str) -> str:
    """``text`` with URLs reduced to ``redact_url``, credential-shaped strings and the values of secret-named
    environment variables replaced by ``<redacted>``."""
    for value in _secret_values():
        text = text.replace(value, REDACTED)
    text = _URL.sub(
        lambda m: redact_url(m.group(0)) if any(c in m.group(0) for c in "?@#") else m.group(0), text
    )
    return _SECRET.sub(REDACTED, text)
