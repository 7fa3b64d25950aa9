"""What keeps the web server safe in front of strangers: per-client limits, operator sign-in, body sizes.

- `RateLimiter`: at most N requests a minute per client address (a sliding window); over it the
  caller answers 429 with `Retry-After`.
- `LoginGuard`: wrong operator passwords lock the client address out, for longer each time.
- `password_matches`: the operator password checked in constant time, plain or stored as a
  `pbkdf2_sha256$ITERATIONS$SALT$HASH` hash (Django's format; `python -m ui.guard` prints one).
- `Operators`: named operators (`[handoff.agents]`, roles agent or admin, hashed passwords) beside
  the `operator` user, who stays an admin; every check is `password_matches`, constant time.
- `EdgeMiddleware`: request bodies over a size get 413, the operator panel's sign-in is refused
  while its client is locked out, session cookies are never `SameSite=None`, and the panel's own
  routes (Gradio's heartbeat, startup events, queue) answer only a signed-in session.
- `SameSite`: state-changing REST calls take JSON only (415) and none from another site's page (403).

Client addresses are the TCP peer's: `X-Forwarded-For` counts only from the proxies listed in
`[server] trusted_proxies` (`ui.app.uvicorn_options` sets uvicorn's `forwarded_allow_ips` from it,
and turns proxy headers off when it is empty), so a client cannot name itself a fresh address to
escape a rate limit or a lock-out. Knows nothing about chat or answers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import ChatbotError

HASH_PREFIX = "pbkdf2_sha256$"
HASH_ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256


class RateLimited(ChatbotError):
    """Too many requests from one client; `retry_after_s` says when the next one is accepted."""

    def __init__(self, retry_after_s: float, what: str = "messages"):
        self.retry_after_s = max(1, math.ceil(retry_after_s))
        super().__init__(f"too many {what} from your address; please wait {self.retry_after_s} s and try again")


class RateLimiter:
    """At most `per_minute` hits per key in any 60 s (a sliding window); thread-safe."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}  # 'what|key' -> hit times
        self._lock = threading.Lock()

    def hit(self, key: str, what: str = "messages") -> None:
        """Count one request of kind `what` for `key` (each kind has its own budget); `RateLimited`
        (not counted) when it is over the limit."""
        now = self.clock()
        with self._lock:
            if len(self._hits) > 10_000:  # forget idle clients, so the table stays small
                self._hits = {k: q for k, q in self._hits.items() if q and q[-1] > now - 60}
            hits = self._hits.setdefault(f"{what}|{key}", deque())
            while hits and hits[0] <= now - 60:
                hits.popleft()
            if len(hits) >= self.per_minute:
                raise RateLimited(hits[0] + 60 - now, what)
            hits.append(now)


class LoginGuard:
    """Locks a client out after `max_failures` wrong passwords in a row: `lockout_s`, doubled each time."""

    def __init__(self, max_failures: int, lockout_s: float, clock: Callable[[], float] = time.monotonic):
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.clock = clock
        self._state: dict[str, tuple[int, int, float]] = {}  # key -> (failures, lock-outs, locked until)
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """`RateLimited` while `key` is locked out (a right password is refused too)."""
        with self._lock:
            until = self._state.get(key, (0, 0, 0.0))[2]
        if until > self.clock():
            raise RateLimited(until - self.clock(), "wrong passwords")

    def failed(self, key: str) -> None:
        with self._lock:
            failures, lockouts, until = self._state.get(key, (0, 0, 0.0))
            failures += 1
            if failures >= self.max_failures:
                until = self.clock() + self.lockout_s * 2 ** min(lockouts, 10)
                failures, lockouts = 0, lockouts + 1
            self._state[key] = (failures, lockouts, until)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._state.pop(key, None)


def hash_password(password: str, iterations: int = HASH_ITERATIONS) -> str:
    """A `pbkdf2_sha256$ITERATIONS$SALT$HASH` string to put in `[server] operator_password`."""
    salt = secrets.token_urlsafe(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"{HASH_PREFIX}{iterations}${salt}${base64.b64encode(digest).decode()}"


_verified: dict[str, bytes] = {}  # stored hash -> sha256 of the password last verified against it


def password_matches(given: str, expected: str) -> bool:
    """True when `given` is the operator password; `expected` is plain or a `hash_password` hash.
    Constant time in `given`; a hash is derived once per right password, then remembered."""
    if not expected:
        return False
    if not expected.startswith(HASH_PREFIX):
        return hmac.compare_digest(given.encode(), expected.encode())
    fingerprint = hashlib.sha256(given.encode()).digest()
    if hmac.compare_digest(_verified.get(expected, b""), fingerprint):
        return True
    try:
        _, iterations, salt, stored = expected.split("$")
        digest = hashlib.pbkdf2_hmac("sha256", given.encode(), salt.encode(), int(iterations))
        ok = hmac.compare_digest(base64.b64encode(digest), stored.encode())
    except ValueError:
        return False
    if ok:
        _verified[expected] = fingerprint
    return ok


@dataclass(frozen=True)
class Operator:
    """A signed-in person: `name` is recorded as the author of what they write."""

    name: str
    role: str  # "agent" (the inbox, help-centre answers) or "admin" (also analytics and document uploads)

    @property
    def admin(self) -> bool:
        return self.role == "admin"


class Operators:
    """Named operators and their roles. The `operator_user` with its password (env or config) is an admin;
    `accounts` (user -> (password or hash, role), from `[handoff.agents]`) add more. Constant-time checks."""

    def __init__(
        self,
        operator_user: str,
        operator_password: Callable[[], str],
        accounts: dict[str, tuple[str, str]] | None = None,
    ):
        self.operator_user = operator_user
        self.operator_password = operator_password
        self.accounts = dict(accounts or {})

    def check(self, user: str, password: str) -> Operator | None:
        """The operator signed in by `user` and `password`, or None. An unknown user costs what a known
        one's wrong password does (a key derivation as slow as the slowest stored hash), so the time
        taken never tells real names from unknown ones."""
        if hmac.compare_digest(user.encode(), self.operator_user.encode()):
            return Operator(user, "admin") if password_matches(password, self.operator_password()) else None
        stored, role = self.accounts.get(user, ("", "agent"))
        if not stored:
            password_matches(password, self._decoy())
            return None
        return Operator(user, role) if password_matches(password, stored) else None

    def named(self, user: str) -> Operator:
        """The operator `user` with their role (a session already signed in): `operator_user` is an admin,
        an account has its configured role, anyone else is an agent."""
        if user == self.operator_user:
            return Operator(user, "admin")
        return Operator(user, self.accounts.get(user, ("", "agent"))[1])

    def _decoy(self) -> str:
        """A hash nobody's password matches, with as many iterations as the slowest stored hash."""
        if self.__dict__.get("_decoy_hash") is None:
            stored = [p for p, _ in self.accounts.values()] + [self.operator_password()]
            counts = [
                int(p.split("$")[1])
                for p in stored
                if p.startswith(HASH_PREFIX) and p.count("$") == 3 and p.split("$")[1].isdigit()
            ]
            self._decoy_hash = (
                hash_password(secrets.token_urlsafe(16), max(counts)) if counts else secrets.token_urlsafe(16)
            )
        return self._decoy_hash

    def bearer(self, token: str) -> Operator | None:
        """`Authorization: Bearer PASSWORD` signs in the operator user (an admin), as before named users."""
        return Operator(self.operator_user, "admin") if password_matches(token, self.operator_password()) else None


def client_key(scope_or_request) -> str:
    """The client's address (the TCP peer), from an ASGI scope or a Starlette/Gradio request."""
    client = (
        scope_or_request.get("client")
        if isinstance(scope_or_request, dict)
        else getattr(scope_or_request, "client", None)
    )
    host = client[0] if isinstance(client, tuple | list) else getattr(client, "host", None)
    return host or "unknown"


class EdgeMiddleware:
    """ASGI middleware: body size limits (413), the panel's sign-in lock-out (429), no SameSite=None cookies.

    `max_body_bytes(path)` is the largest request body accepted at `path` (None: no limit here).
    `login_path` is the operator panel's sign-in route, guarded by `logins`. `signed_in(scope)` says
    whether a request carries the panel's session; without it, the panel's routes under
    `PANEL_API` other than those the sign-in page needs (`PANEL_OPEN`) get 401.
    """

    PANEL_API = "/operator/gradio_api/"
    PANEL_OPEN = frozenset(("login", "login_check", "token", "user", "app_id", "theme.css"))

    def __init__(
        self,
        app,
        max_body_bytes: Callable[[str], int | None],
        login_path: str,
        logins: LoginGuard,
        signed_in: Callable[[dict], bool] | None = None,
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.login_path = login_path
        self.logins = logins
        self.signed_in = signed_in

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if (
            self.signed_in is not None
            and path.startswith(self.PANEL_API)
            and path[len(self.PANEL_API) :].strip("/") not in self.PANEL_OPEN
            and not self.signed_in(scope)
        ):
            return await _json(send, 401, "sign in to the operator panel first")
        limit = self.max_body_bytes(path)
        if limit is not None:
            declared = dict(scope.get("headers") or []).get(b"content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > limit):
                return await _json(send, 413, _too_large(limit))
            receive = _limited(receive, limit)
        login = scope["method"] == "POST" and path.rstrip("/") == self.login_path
        key = client_key(scope)
        if login:
            try:
                self.logins.check(key)
            except RateLimited as exc:
                return await _json(send, 429, str(exc), {"retry-after": str(exc.retry_after_s)})
        status: list[int] = []

        async def sending(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])
                message["headers"] = [
                    (k, _lax(v) if k.lower() == b"set-cookie" else v) for k, v in message.get("headers", [])
                ]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except _BodyTooLarge:
            if not status:
                await _json(send, 413, _too_large(limit))
            return
        if login and status:
            (self.logins.succeeded if status[0] == 200 else self.logins.failed)(key)


class SameSite:
    """ASGI middleware against cross-site requests to the REST API (`prefix`): a state-changing request
    (POST, PUT, PATCH, DELETE) whose `Origin` is neither this server's own nor in `allowed_origins` gets
    403, and one with a body that is not JSON gets 415 (a page on another site can send a plain form
    with the browser's stored credentials without asking; JSON it cannot). `form_paths` also take
    multipart forms (a voice message, a screenshot)."""

    def __init__(self, app, allowed_origins: list[str], prefix: str = "/api/", form_paths: tuple[str, ...] = ()):
        self.app = app
        self.allowed = {o.rstrip("/").lower() for o in allowed_origins}
        self.prefix = prefix
        self.form_paths = form_paths

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] not in ("POST", "PUT", "PATCH", "DELETE")
            or not path.startswith(self.prefix)
        ):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin-1").rstrip("/").lower()
        host = headers.get(b"host", b"").decode("latin-1").lower()
        _, separator, netloc = origin.partition("://")
        same_site = bool(separator) and bool(host) and netloc == host  # "null" and host-less requests are foreign
        if origin and origin not in self.allowed and not same_site:
            return await _json(
                send,
                403,
                "requests from pages on other sites are refused; an admin can list the site in [server] cors_origins",
            )
        kind = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        json_ok = kind == "application/json" or kind.endswith("+json")
        form_ok = kind == "multipart/form-data" and path.rstrip("/") in self.form_paths
        declared = headers.get(b"content-length", b"0")
        empty = not kind and declared in (b"", b"0") and b"transfer-encoding" not in headers
        if not (json_ok or form_ok or empty):
            return await _json(send, 415, "send the body as JSON (Content-Type: application/json)")
        return await self.app(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def _too_large(limit: int | None) -> str:
    return f"the request is larger than {(limit or 0) / 2**20:.1f} MB; send a smaller file"


def _limited(receive, limit: int):
    """`receive` that fails once more than `limit` body bytes have arrived (no Content-Length needed)."""
    seen = 0

    async def receiving():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge()
        return message

    return receiving


def _lax(cookie: bytes) -> bytes:
    """Gradio's sign-in cookie says SameSite=None (any site could send it): make it Lax."""
    return cookie.replace(b"SameSite=none", b"SameSite=lax").replace(b"SameSite=None", b"SameSite=lax")


async def _json(send, status: int, error: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": error}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    head += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":  # python -m ui.guard: reads a password on stdin, prints its hash for the config
    import getpass

    secret = getpass.getpass("operator password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if not secret:
        raise SystemExit("ui.guard: an empty password cannot be used")
    print(hash_password(secret))
