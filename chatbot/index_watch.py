"""One index for every replica: a process that changed the index folder publishes its version in the database
(`chatbot.verbs.publish_version`); each server polls for the latest (`IndexWatcher`) and, when it differs from the one it loaded,
reads the folder again and swaps it in atomically (`knowledge.index.KnowledgeIndex.reload`), then refreshes
what it derived from it (the calibrated answer decision) without a restart.

Replicas must see the same folder (a shared volume) under the same path and use one database. It does not
copy files between machines.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from chatbot.records.store import Store
from core.errors import ChatbotError

log = logging.getLogger(__name__)


def watcher(config, pipeline) -> IndexWatcher:
    """A server's watcher over its pipeline's index: a new version also rebuilds the settings, the action
    router calibrated into it and the searcher with the reranker trained into it (`[server] index_poll_s`;
    0 = off)."""
    from chatbot.builder import build_router, build_searcher, build_settings

    def refresh() -> None:
        searcher = build_searcher(config, pipeline.index)
        searcher.warm_up()  # the new reranker's weights, before the swap: no customer waits for them
        pipeline.searcher = searcher
        pipeline.settings = build_settings(config, pipeline.index)
        pipeline.router = build_router(config, pipeline.index)

    return IndexWatcher(pipeline.store, pipeline.index, refresh, config.server.index_poll_s)


class IndexWatcher:
    """Polls `store` every `every_s` seconds; a newer published version of `index`'s folder is loaded, then
    `refresh()` rebuilds what depends on it."""

    def __init__(self, store: Store, index, refresh: Callable[[], None] = lambda: None, every_s: float = 5.0):
        self.store = store
        self.index = index
        self.refresh = refresh
        self.every_s = every_s
        self._seen: str | None = None  # the last published version acted on
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """One poll: True when a newer version was published and is now loaded."""
        current = self.store.index_versions.current(self.index.key)
        if current is None or current in (self._seen, self.index.version()):
            return False  # nothing new (a version whose files never matched it is not read again and again)
        self._seen = current
        self.index.reload()
        self.refresh()
        if self.index.version() != current:  # written again since: that write's own publication is read next
            log.info("index at %s: loaded %s, published %s", self.index.directory, self.index.version(), current)
        return True

    def start(self) -> None:
        if self.every_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="index-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.check()
            except ChatbotError as exc:  # a database or folder briefly unavailable: try again next time
                log.warning("index watch: %s", exc)
