"""The operator panel's signed-in sessions, shared by every replica through Redis.

Gradio keeps a panel's sessions in its app: a random token (the `access-token-<cookie id>` cookie)
mapped to the user name, in a dict, under a cookie id drawn at each start. Behind a load balancer an
operator signed in on one replica was a stranger to the others. With `[server] redis_url`, `share`
gives the mounted panel a cookie id that is the same on every replica and a token map kept in Redis
(`RedisTokens`, each token expiring after `SESSION_S`), so a sign-in on one replica holds on all of
them, and signing out on one ends it everywhere. Without Redis the panel is left as Gradio made it.
It knows nothing about who may sign in (`ui.access`).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

from ui.guard_redis import PREFIX

SESSION_S = 12 * 3600  # a panel sign-in lasts a working day
COOKIE_ID = "chatbot-operator-panel"  # the same on every replica (Gradio draws one per start)
_KEY = PREFIX + "panel-session:"


class RedisTokens(MutableMapping[str, str]):
    """token -> user name, in Redis; what Gradio's `App.tokens` dict holds, for every replica at once."""

    def __init__(self, client, session_s: int = SESSION_S):
        self.client = client
        self.session_s = session_s

    def __getitem__(self, token: str) -> str:
        user = self.client.get(_KEY + str(token))
        if user is None:
            raise KeyError(token)
        return user.decode()

    def __setitem__(self, token: str, user: str) -> None:
        self.client.set(_KEY + token, user, ex=self.session_s)

    def __delitem__(self, token: str) -> None:
        if not self.client.delete(_KEY + token):
            raise KeyError(token)

    def __iter__(self) -> Iterator[str]:
        for key in self.client.scan_iter(match=_KEY + "*"):
            yield key.decode()[len(_KEY) :]

    def __len__(self) -> int:
        return sum(1 for _ in self)


def share(panel_app, redis_url: str) -> None:
    """Make the mounted Gradio `panel_app` keep its sessions in Redis at `redis_url` (no-op without one)."""
    if not redis_url:
        return
    from ui.guard_redis import connect

    panel_app.cookie_id = COOKIE_ID
    panel_app.tokens = RedisTokens(connect(redis_url))
