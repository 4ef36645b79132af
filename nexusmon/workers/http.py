"""The ``http`` worker: one HTTP request, the response in the outputs.

Parameters (``with``): ``url`` (required), ``method`` (default GET),
``headers`` (mapping), ``json`` (a value sent as JSON) or ``body`` (text),
``expect_status`` (a code or a list of codes; default any 2xx) and
``timeout`` (seconds; default the task timeout, else 30).

Outputs: ``status``, ``headers`` (lower-case names), ``body`` (text, at most
:data:`MAX_BODY` bytes are read) and ``json`` when the response is JSON.
A connection error, a timeout or an unexpected status fails the task; the
outputs of an unexpected status still hold the response.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nexusmon.util.lazy import asyncio
from nexusmon.util.masking import Masker
from nexusmon.workers.base import Result, Task

if TYPE_CHECKING:
    import httpx2

MAX_BODY = 1_000_000
DEFAULT_TIMEOUT = 30.0

PARAMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "url": {"type": "string", "minLength": 1},
        "method": {"type": "string", "minLength": 1},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "json": {},
        "body": {"type": "string"},
        "expect_status": {
            "oneOf": [
                {"type": "integer"},
                {"type": "array", "items": {"type": "integer"}, "minItems": 1},
            ]
        },
        "timeout": {"type": "number", "exclusiveMinimum": 0},
        "cwd": {"type": "string"},
    },
    "required": ["url"],
    "not": {"required": ["json", "body"]},
    "additionalProperties": False,
}


class HttpWorker:
    """Sends one request with ``httpx2`` (or ``httpx``) and checks the status."""

    name = "http"
    capabilities: list[str] = []  # noqa: RUF012 - the plugin contract's attribute
    risk_level = "D"
    requires_approval = False
    params_schema: dict[str, Any] | None = PARAMS_SCHEMA

    async def execute(self, task: Task) -> Result:
        httpx2 = _client_library()
        masker = Masker(task.secrets)
        params = task.params
        method = str(params.get("method", "GET")).upper()
        url = str(params.get("url", ""))
        timeout = float(params.get("timeout") or task.timeout or DEFAULT_TIMEOUT)
        problem = _request_problem(httpx2, url, params)
        if problem is not None:
            return _failed(masker, "request", f"{method} {url}: {problem}")
        try:
            # httpx's timeout bounds each read; the deadline bounds the whole exchange (a server
            # that sends a byte every second would otherwise hold the task for ever).
            status, headers, raw, truncated = await asyncio.wait_for(
                _request(httpx2, method, url, params, timeout), timeout)
        except (httpx2.TimeoutException, asyncio.TimeoutError):
            return _failed(masker, "timeout", f"{method} {url}: timed out after {timeout:g}s")
        except httpx2.ConnectError as exc:
            return _failed(masker, "connection", f"cannot connect to {url}: {_describe(exc)}")
        except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
            return _failed(masker, "connection", f"{method} {url}: {_describe(exc)}")
        outputs = masker.mask_value(_outputs(status, headers, raw, truncated))
        log = masker.mask(f"{method} {url} -> {status} ({len(raw)} bytes)\n")
        if not status_expected(status, params.get("expect_status")):
            error = masker.mask(f"{method} {url}: unexpected status {status}")
            return Result(ok=False, outputs=outputs, error=error, failure_kind="status", log=log)
        return Result(ok=True, outputs=outputs, log=log)


def _request_problem(httpx2_module: Any, url: str, params: Mapping[str, Any]) -> str | None:
    """What no request can be made of (said plainly rather than as the exception the network
    layer raises deep down): a port out of range, a header that is not ASCII."""
    try:
        port = httpx2_module.URL(url).port
    except (httpx2_module.InvalidURL, ValueError, TypeError):
        return None  # the request reports it in its own words
    if port is not None and not 0 < port < 65536:
        return f"port {port} is out of range (1-65535)"
    for name, value in dict(params.get("headers") or {}).items():
        if not (str(name).isascii() and str(value).isascii()):
            return f"header {name!r} is not ASCII text (encode it, as RFC 8187 or base64)"
    return None


def _client_library() -> Any:
    """``httpx2`` (anthropic 2.x brings it), else ``httpx`` (what older anthropic releases bring).

    Both have the same API. Imported here, not at module level: it costs ~90 ms, which
    every command would otherwise pay at start-up.
    """
    try:
        import httpx2
    except ImportError:
        import httpx as httpx2  # type: ignore[import-not-found,no-redef,unused-ignore]
    return httpx2


async def _request(
    httpx2_module: Any, method: str, url: str, params: Mapping[str, Any], timeout: float
) -> tuple[int, dict[str, str], bytes, bool]:
    """Send the request; (status, headers, up to MAX_BODY bytes of body, truncated)."""
    client: httpx2.AsyncClient
    async with (
        httpx2_module.AsyncClient(timeout=timeout) as client,
        client.stream(method, url, **_body(params)) as response,
    ):
        raw = bytearray()
        truncated = False
        async for chunk in response.aiter_bytes():
            raw.extend(chunk)
            if len(raw) > MAX_BODY:
                truncated = True
                break
        headers: dict[str, str] = {}
        for key, value in response.headers.multi_items():
            name = key.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return response.status_code, headers, bytes(raw[:MAX_BODY]), truncated


def _body(params: Mapping[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {"headers": dict(params.get("headers") or {})}
    if "json" in params:
        extra["json"] = params["json"]
    elif "body" in params:
        extra["content"] = str(params["body"]).encode("utf-8")
    return extra


def _outputs(status: int, headers: dict[str, str], raw: bytes, truncated: bool) -> dict[str, Any]:
    body = raw.decode("utf-8", errors="replace")
    outputs: dict[str, Any] = {"status": status, "headers": headers, "body": body}
    if truncated:
        outputs["body"] = body + f"\n[... truncated after {MAX_BODY} bytes ...]\n"
    elif "json" in headers.get("content-type", ""):
        try:
            outputs["json"] = json.loads(body)
        except ValueError:
            pass
    return outputs


def status_expected(status: int, expected: Any) -> bool:
    """True when ``status`` is the expected code (or one of them); default any 2xx."""
    if expected is None:
        return 200 <= status < 300
    if isinstance(expected, int):
        return status == expected
    return status in expected


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _failed(masker: Masker, kind: str, error: str) -> Result:
    return Result(ok=False, error=masker.mask(error), failure_kind=kind, log=masker.mask(error))
