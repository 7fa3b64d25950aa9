"""The per-client limits of `ui.guard`, kept in Redis so that every replica counts the same requests.

With `[server] redis_url` set, `RedisRateLimiter` and `RedisLoginGuard` replace the in-process
`RateLimiter` and `LoginGuard` (same methods, same errors). Each decision is one Lua script run on
the Redis server, with the server's own clock (`TIME`): a sliding window of request times in a sorted
set, and a hash of failures, lock-outs and the locked-until time; so two replicas can never each
allow the last request of a window, and their clocks need not agree. Keys expire on their own.
Without `redis_url` nothing here is used. It knows nothing about HTTP or chat.
"""

from __future__ import annotations

import uuid

from core.errors import ChatbotError
from ui.guard import RateLimited

PREFIX = "chatbot:"
WINDOW_MS = 60_000

# KEYS[1]: the window's sorted set; ARGV: limit, member. Returns {allowed (1/0), ms until a slot frees}.
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + 60000 - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], 60000)
return {1, 0}
"""

# KEYS[1]: the client's hash. Returns ms the client is still locked out for (0: not locked).
_LOCKED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local locked = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if locked > now then return locked - now end
return 0
"""

# KEYS[1]: the client's hash; ARGV: max failures, first lock-out ms. One more wrong password.
_FAILED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0') + 1
local lockouts = tonumber(redis.call('HGET', KEYS[1], 'lockouts') or '0')
local locked = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if failures >= tonumber(ARGV[1]) then
  locked = now + tonumber(ARGV[2]) * 2 ^ math.min(lockouts, 10)
  failures, lockouts = 0, lockouts + 1
end
redis.call('HSET', KEYS[1], 'failures', failures, 'lockouts', lockouts, 'until', locked)
redis.call('PEXPIRE', KEYS[1], math.max(locked - now, 0) + 86400000)
return locked
"""


def connect(url: str):
    """A Redis client for `url`, checked now: a wrong URL fails at start, saying what to fix."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise ChatbotError(
            f"cannot reach Redis at [server] redis_url ({exc.__class__.__name__}: {exc}); start redis-server, "
            "fix the URL, or leave redis_url empty to keep the limits in this process"
        ) from None
    return client


class RedisRateLimiter:
    """`ui.guard.RateLimiter` shared through Redis: at most `per_minute` hits per key in any 60 s."""

    def __init__(self, client, per_minute: int):
        self.per_minute = per_minute
        self._hit = client.register_script(_HIT)

    def hit(self, key: str, what: str = "messages") -> None:
        allowed, wait_ms = self._hit(keys=[f"{PREFIX}rate:{what}|{key}"], args=[self.per_minute, uuid.uuid4().hex])
        if not int(allowed):
            raise RateLimited(int(wait_ms) / 1000.0, what)


class RedisLoginGuard:
    """`ui.guard.LoginGuard` shared through Redis: a lock-out seen by one replica holds on all."""

    def __init__(self, client, max_failures: int, lockout_s: float):
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self._client = client
        self._locked = client.register_script(_LOCKED)
        self._failed = client.register_script(_FAILED)

    def check(self, key: str) -> None:
        wait_ms = int(self._locked(keys=[f"{PREFIX}login:{key}"]))
        if wait_ms > 0:
            raise RateLimited(wait_ms / 1000.0, "wrong passwords")

    def failed(self, key: str) -> None:
        self._failed(keys=[f"{PREFIX}login:{key}"], args=[self.max_failures, int(self.lockout_s * 1000)])

    def succeeded(self, key: str) -> None:
        self._client.delete(f"{PREFIX}login:{key}")


def build_guards(server) -> tuple:
    """(rate limiter, login guard) for `[server]`: in Redis when `redis_url` is set, else in this process."""
    from ui.guard import LoginGuard, RateLimiter

    if not server.redis_url:
        return RateLimiter(server.chat_requests_per_minute), LoginGuard(
            server.login_max_failures, server.login_lockout_s
        )
    client = connect(server.redis_url)
    return (
        RedisRateLimiter(client, server.chat_requests_per_minute),
        RedisLoginGuard(client, server.login_max_failures, server.login_lockout_s),
    )
