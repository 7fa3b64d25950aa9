"""Metering what owning the assistant takes besides answering customers: each run of model work (ingest,
calibration, fine-tuning, distillation, improvement, evaluation) with its wall and CPU seconds, and the
hours a server is up (a heartbeat every minute, so a server that dies is counted to its last one).

The records go to the conversation database (`chatbot.records.ownership_records`), where
`chatbot.reporting.ownership` prices them. A failure to record never fails the work: it is logged.
It does not know what the machine costs; the price sheet does.
"""

from __future__ import annotations

import logging
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from chatbot.records.store import Store
from core.errors import ChatbotError

log = logging.getLogger(__name__)
HEARTBEAT_S = 60.0


def work_device(config) -> str:
    """The device whose price applies to a run under `config`: cuda when one is used, else cpu."""
    from chatbot.answer.llm import pick_device

    return pick_device(config.models.device)


def cpu_seconds() -> float:
    """User and system CPU seconds of this process and its finished children (all threads)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextmanager
def metered(db_url: str, kind: str, device: str = "cpu", detail: dict | None = None) -> Iterator[dict]:
    """Record a run of `kind` on `device` with its wall and CPU seconds, failed or not (the compute was
    spent); the caller may add to the yielded detail (no personal data)."""
    started_at, wall, cpu = datetime.now(UTC), time.perf_counter(), cpu_seconds()
    info = dict(detail or {})
    try:
        yield info
    finally:
        try:
            Store(db_url).ownership.record_work(
                kind, device, started_at, time.perf_counter() - wall, cpu_seconds() - cpu, info
            )
        except ChatbotError as exc:
            log.warning("the %s run could not be recorded for the cost of ownership: %s", kind, exc)


class ServerClock:
    """Records a server's uptime: `start()` at start, a heartbeat every `every_s`, `stop()` at its end.
    `on_beat` runs after each heartbeat (a replica looks for turns a dead one left unanswered)."""

    def __init__(
        self, store: Store, device: str, every_s: float = HEARTBEAT_S, on_beat: Callable[[], object] = lambda: None
    ):
        self.store = store
        self.device = device
        self.every_s = every_s
        self.on_beat = on_beat
        self._run: int | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self._run = self.store.ownership.server_started(self.device, socket.gethostname())
        except ChatbotError as exc:
            log.warning("the server's uptime is not recorded: %s", exc)
            return
        self._thread = threading.Thread(target=self._beat, name="server-clock", daemon=True)
        self._thread.start()

    @property
    def run_id(self) -> int | None:
        """This server run's row in `server_runs` (None before `start()` or when it could not be recorded)."""
        return self._run

    def _beat(self) -> None:
        while not self._stopping.wait(self.every_s):
            self._seen(stopped=False)
            try:
                self.on_beat()
            except ChatbotError as exc:
                log.warning("after the heartbeat: %s", exc)

    def _seen(self, stopped: bool) -> None:
        if self._run is None:
            return
        try:
            self.store.ownership.server_seen(self._run, stopped)
        except ChatbotError as exc:
            log.warning("the server's heartbeat is not recorded: %s", exc)

    def stop(self) -> None:
        self._stopping.set()
        self._seen(stopped=True)
