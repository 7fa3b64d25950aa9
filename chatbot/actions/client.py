"""One action's HTTP request to the company's system, and what its answer means.

The URL, headers and body are the company's templates (`chatbot.actions.templates`), given the
customer's values URL-quoted or JSON-escaped and the environment (for the base URL and secrets in
headers). A header that renders empty is not sent. The answer is sorted into `done` (2xx), `not_found`
(404), `refused` (another 4xx: the system's reason is in the body), `failed` (5xx, 401/403/407/429 which
are about the assistant's own access, a body that is not JSON, or a request that cannot be sent) and `timeout` / `unreachable` (no answer). It does not retry: a write must not happen twice.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import httpx

from chatbot.actions.templates import RenderError, environment, json_escaped, render, url_quoted
from core.config_actions import ActionConfig

MAX_RESPONSE_BYTES = 1_000_000  # a bigger answer is not read
OUR_FAULT = (401, 403, 407, 429)  # 4xx answers that are about the assistant's access, never shown to a customer


@dataclass(frozen=True)
class CallResult:
    """What the company's system answered: `status` (see the module), its JSON, and the request as sent
    (without headers, which may hold secrets)."""

    status: str  # done, not_found, refused, failed, timeout, unreachable
    data: dict = field(default_factory=dict)
    http_status: int | None = None
    seconds: float = 0.0
    request: dict = field(default_factory=dict)  # method, url, body


class ActionClient:
    """Makes actions' requests with one pooled HTTP client (`transport`: tests may pass httpx's)."""

    def __init__(self, transport: httpx.BaseTransport | None = None):
        self._transport = transport
        self._client: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(transport=self._transport, follow_redirects=False)
        return self._client

    def call(self, action: ActionConfig, params: dict[str, str]) -> CallResult:
        """Send `action`'s request with `params`; never raises for the system's failures."""
        started = time.perf_counter()
        try:
            method, url, headers, body = _request(action, params)
        except RenderError as exc:
            return CallResult("failed", {"detail": str(exc)}, seconds=time.perf_counter() - started)
        sent = {"method": method, "url": url, "body": body}
        try:
            response = self._http().request(method, url, headers=headers, json=body, timeout=action.request.timeout_s)
        except httpx.TimeoutException:
            return CallResult("timeout", seconds=time.perf_counter() - started, request=sent)
        except httpx.HTTPError as exc:
            detail = {"detail": type(exc).__name__}
            return CallResult("unreachable", detail, seconds=time.perf_counter() - started, request=sent)
        except (UnicodeError, ValueError, TypeError) as exc:  # a header or URL that cannot be sent as rendered
            detail = {"detail": f"the request could not be sent: {type(exc).__name__}"}
            return CallResult("failed", detail, seconds=time.perf_counter() - started, request=sent)
        seconds = time.perf_counter() - started
        data = _json(response)
        code = response.status_code
        if 200 <= code < 300:
            status = "done" if data is not None else "failed"
        elif code == 404:
            status = "not_found"
        elif code in OUR_FAULT:  # the assistant's credentials or pace, not the customer's details: a person helps
            status = "failed"
        elif 400 <= code < 500:
            status = "refused"
        else:
            status = "failed"
        return CallResult(status, data or {}, code, seconds, sent)


def _request(action: ActionConfig, params: dict[str, str]) -> tuple[str, str, dict[str, str], object]:
    """The method, URL, headers and parsed JSON body (None: no body) of `action` for `params`."""
    r = action.request
    env = environment()
    url = render(r.url, params=url_quoted(params), env=env)
    if not url.startswith(("http://", "https://")):
        raise RenderError(f"the URL template gave '{url[:60]}', not an http(s) URL")
    headers = {name: render(text, params=params, env=env) for name, text in r.headers.items()}
    body = None
    if r.body:
        try:
            body = json.loads(render(r.body, params=json_escaped(params), env=env))
        except json.JSONDecodeError as exc:
            raise RenderError(f"the body template did not give JSON: {exc}") from None
    return r.method, url, {k: v for k, v in headers.items() if v}, body


def _json(response: httpx.Response) -> dict | None:
    """The answer's JSON object (a list is wrapped as {"items": [...]}); None when it is not JSON."""
    if len(response.content) > MAX_RESPONSE_BYTES:
        return None
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else {"items": data}
