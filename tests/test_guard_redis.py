"""Limits shared through Redis: two replicas' limiters and login guards count the same client together."""

import threading

import pytest
import redis

from core.config import load_config
from core.errors import ChatbotError
from ui.guard import LoginGuard, RateLimited, RateLimiter
from ui.guard_redis import RedisLoginGuard, RedisRateLimiter, build_guards, connect


@pytest.fixture
def fresh(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    return redis_url


def test_two_replicas_let_exactly_the_limit_through_together_even_at_once(fresh):
    replicas = [RedisRateLimiter(connect(fresh), per_minute=10) for _ in range(2)]
    allowed, refused = [], []

    def send(n: int) -> None:
        try:
            replicas[n % 2].hit("203.0.113.7")
            allowed.append(n)
        except RateLimited as exc:
            refused.append(exc.retry_after_s)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(allowed) == 10 and len(refused) == 30
    assert all(1 <= wait <= 60 for wait in refused)
    replicas[1].hit("198.51.100.1")  # another client has its own budget
    replicas[0].hit("203.0.113.7", what="ratings")  # and so has another kind of request


def test_a_lock_out_on_one_replica_holds_on_the_other_and_a_right_password_clears_it(fresh):
    a, b = (RedisLoginGuard(connect(fresh), max_failures=3, lockout_s=30) for _ in range(2))
    a.failed("203.0.113.7")
    b.failed("203.0.113.7")
    b.check("203.0.113.7")  # two wrong: not yet
    a.failed("203.0.113.7")
    with pytest.raises(RateLimited) as locked:
        b.check("203.0.113.7")
    assert 25 <= locked.value.retry_after_s <= 30
    a.check("198.51.100.1")  # others are not locked
    b.succeeded("203.0.113.7")
    a.check("203.0.113.7")


def test_the_lock_out_doubles_each_time(fresh):
    guard = RedisLoginGuard(connect(fresh), max_failures=1, lockout_s=10)
    guard.failed("x")
    guard.failed("x")  # while locked: a second lock-out, twice as long
    with pytest.raises(RateLimited) as locked:
        guard.check("x")
    assert 15 < locked.value.retry_after_s <= 20


def test_without_redis_the_limits_stay_in_the_process_and_a_wrong_url_says_what_to_do(fresh):
    limiter, logins = build_guards(load_config(None).server)
    assert isinstance(limiter, RateLimiter) and isinstance(logins, LoginGuard)
    shared, _ = build_guards(load_config(None, {"server": {"redis_url": fresh}}).server)
    assert isinstance(shared, RedisRateLimiter)
    with pytest.raises(ChatbotError, match="leave redis_url empty"):
        connect("redis://127.0.0.1:1/0")
