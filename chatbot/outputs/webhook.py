"""Signed webhook deliveries for the live handoff, so Chatwoot, Zendesk or Slack can follow along.

Each event (`handoff`, `agent_reply`, `resolve`) is POSTed as JSON `{"event", "delivery_id",
"sent_at", "conversation_id", ...details}` with the headers `X-Chatbot-Event`, `X-Chatbot-Delivery`
and `X-Chatbot-Signature: sha256=HEX`, the HMAC-SHA256 of the exact body bytes under the shared
secret (GitHub's scheme: the receiver recomputes it over the raw body and compares in constant time).
A network error, a 5xx or a 429 is retried `retries` times, waiting `backoff_s`, then twice that,
and so on; a 4xx other than 429 is not retried (the receiver refused it). Deliveries run on one
background thread, in order, so the customer's turn never waits for a receiver. Knows nothing
about conversations beyond the payload it is given.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Chatbot-Signature"


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for `body`: "sha256=" and the hex HMAC-SHA256 under `secret`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str) -> bool:
    """True when `header` is `sign(body, secret)` (constant time): what a receiver checks."""
    return hmac.compare_digest(sign(body, secret).encode(), (header or "").encode())


@dataclass(frozen=True)
class Delivery:
    """What happened to one event: delivered or given up, after how many attempts."""

    delivery_id: str
    event: str
    attempts: int
    delivered: bool
    status: int | None  # the last HTTP status, None after a network error


class WebhookSender:
    """POSTs signed events to `url` from a background thread, retrying with exponential back-off.

    `url`: the receiver; `secret`: the HMAC key ("" sends no signature); `retries`: further attempts
    after a failure; `backoff_s`: the first wait, doubled each time; `timeout_s`: per attempt.
    `on_delivery` is called with each `Delivery` once it is settled (tests and logs).
    """

    def __init__(
        self,
        url: str,
        secret: str = "",
        retries: int = 4,
        backoff_s: float = 1.0,
        timeout_s: float = 5.0,
        on_delivery: Callable[[Delivery], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.url = url
        self.secret = secret
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.on_delivery = on_delivery
        self.sleep = sleep
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def send(self, event: str, payload: dict) -> str:
        """Queue one event for delivery and return its delivery id at once (never blocks on the network)."""
        delivery_id = uuid.uuid4().hex
        body = {"event": event, "delivery_id": delivery_id, "sent_at": datetime.now(UTC).isoformat(), **payload}
        self._queue.put((event, delivery_id, json.dumps(body, ensure_ascii=False, default=str).encode()))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
                self._thread.start()
        return delivery_id

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every queued event is settled (delivered or given up); False on time-out."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=self.timeout_s) as client:
            while True:
                event, delivery_id, body = self._queue.get()
                try:
                    result = self._deliver(client, event, delivery_id, body)
                    if self.on_delivery is not None:
                        self.on_delivery(result)
                except Exception:  # noqa: BLE001 - the sender thread must outlive any one delivery
                    log.exception("webhook delivery %s failed", delivery_id)
                finally:
                    self._queue.task_done()

    def _deliver(self, client, event: str, delivery_id: str, body: bytes) -> Delivery:
        import httpx

        headers = {
            "content-type": "application/json",
            "user-agent": "chatbot-webhook/1",
            "X-Chatbot-Event": event,
            "X-Chatbot-Delivery": delivery_id,
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(body, self.secret)
        status = None
        for attempt in range(1, self.retries + 2):
            try:
                status = client.post(self.url, content=body, headers=headers).status_code
            except httpx.HTTPError as exc:
                status = None
                log.warning("webhook %s attempt %d: %s", event, attempt, exc.__class__.__name__)
            if status is not None and status < 400:
                return Delivery(delivery_id, event, attempt, True, status)
            if status is not None and status < 500 and status != 429:
                break  # the receiver refused this event: sending it again would not help
            if attempt <= self.retries:
                self.sleep(self.backoff_s * 2 ** (attempt - 1))
        log.error("webhook %s %s not delivered (last status %s)", event, delivery_id, status)
        return Delivery(delivery_id, event, attempt, False, status)
