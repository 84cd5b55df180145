"""The endpoint: where requests go and how they are worded. Base URLs (normalised for the model identity of
journal keys, redacted for anything printed or stored), API keys (read from the variable a param NAMES, never
stored), the JSON body of a chat request, and the one-line wording of the endpoint's refusals."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai

from synthbench.errors import EndpointError
from synthbench.redact import redact, redact_url

DEFAULT_BASE_URL = "https://api.openai.com/v1"
LOCAL_PLACEHOLDER_KEY = "sk-local"  # sent to a loopback server when no key env var is set
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class EndpointConfig:
    """Where and how fast to ask. Prices are USD per 1M tokens; rates are per minute; times in seconds."""

    base_url: str | None  # None → api.openai.com
    model: str
    api_key_env: str | None = (
        "OPENAI_API_KEY"  # NAME of the env var; the key itself is never stored or logged
    )
    timeout_s: float = 60.0  # a request silent this long counts as timed out if its connection then fails
    max_retries: int = 6
    concurrency: int = 8  # upper bound of in-flight requests
    rpm: float | None = None  # requests / minute budget (token bucket)
    tpm: float | None = None  # tokens / minute budget (token bucket; prompt chars/4 + max_tokens)
    price_in_per_mtok: float = 0.0  # USD per 1M prompt tokens
    price_out_per_mtok: float = 0.0  # USD per 1M completion tokens
    budget_usd: float | None = None
    backoff_base_s: float = 0.5  # first retry waits U(0, base); the n-th U(0, base·2^(n-1)), capped below
    backoff_max_s: float = 30.0
    hard_timeout_factor: float = 10.0  # an answer is awaited up to this × timeout_s: abandoning it repays it

    @property
    def endpoint(self) -> str:
        """The base URL requests go to, as it may be printed (no credentials, query or fragment)."""
        return redact_url(self.base_url or DEFAULT_BASE_URL)

    @property
    def url(self) -> str:
        """The base URL requests go to (not for messages: it may carry a query string)."""
        return self.base_url or DEFAULT_BASE_URL


def normalise_base_url(url: str | None) -> str:
    """One spelling per endpoint, for the model identity of journal keys: scheme and host lower-case,
    ``localhost`` → ``127.0.0.1``, default ports and trailing ``/`` dropped, no credentials, query or fragment.
    ``http://LOCALHOST:80/v1/`` and ``http://127.0.0.1/v1`` are the same endpoint."""
    parts = urlsplit(url or DEFAULT_BASE_URL)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if host == "localhost":
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def remote_identity(model: str, base_url: str | None) -> str:
    """``model@normalised-base-url``: two servers may serve different models under one name."""
    return f"{model}@{normalise_base_url(base_url)}"


def is_loopback_url(url: str | None) -> bool:
    if not url:
        return False
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
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


def chat_body(config: EndpointConfig, request: Any) -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions`` for ``request`` (a ChatRequest): its params as they are (so
    vLLM's and llama.cpp's extras such as ``top_k`` or ``min_p`` pass through), the model and the messages."""
    params = {k: v for k, v in request.params.items() if k not in ("model", "messages", "stream")}
    return {"model": config.model, "messages": request.messages, **params}


def _server_message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    text = str(message or getattr(exc, "message", "") or exc)
    return " ".join(redact(text).split())[:160]


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


def http_client() -> Any:
    """The SDK's aiohttp transport (~1.0 ms CPU per request where httpx's costs ~1.8 ms), or its httpx client
    when aiohttp is not installed."""
    aiohttp_client = getattr(openai, "DefaultAioHttpClient", None)
    if aiohttp_client is not None:
        try:
            return aiohttp_client()
        except RuntimeError:  # the SDK's stand-in when aiohttp is missing
            pass
    return openai.DefaultAsyncHttpxClient()
