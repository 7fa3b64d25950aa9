"""Concurrent replies share one generator: prompts that arrive together are decoded as one batch.

A backend that can decode a batch and report each new token (CTranslate2's `generate_batch` with a
step callback) hands `GenerationBatcher` one function; each caller's `submit` then yields its own
token ids as they are decoded, while other callers' prompts ride in the same batch. A batch starts
as soon as a worker is free: the prompts that queued while the previous batches ran (up to
`max_batch`, of about the same length) go together, so one customer alone waits for nobody. With
`workers` > 1, that many batches are decoded side by side (CTranslate2's `inter_threads` on CPU).
Beyond `max_waiting` queued prompts, `submit` raises `Busy` at once instead of letting every
customer wait longer.

The batch's measured seconds, divided by `workers` (each batch runs on its share of the machine),
are shared among its replies in proportion to their tokens (prompt and completion), so the cost
meter charges each turn its part of the machine, not the whole of it.
This module knows nothing about tokenizers or models.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from core.errors import Busy

# generate(prompts, max_new_tokens, on_token): decode every prompt; on_token(i, token_id) is called for
# each new token of prompt i and returns True when prompt i needs no more tokens.
BatchGenerate = Callable[[Sequence[list[str]], int, Callable[[int, int], bool]], None]


@dataclass(frozen=True)
class Generated:
    """The end of one reply: its completion tokens and its share of the batch's seconds."""

    completion_tokens: int
    compute_s: float
    batch_size: int


@dataclass
class _Request:
    prompt: list[str]
    max_new_tokens: int
    events: queue.Queue = field(default_factory=queue.Queue)  # token ids, then a Generated or an exception
    produced: int = 0
    finished: bool = False


class GenerationBatcher:
    def __init__(
        self,
        generate: BatchGenerate,
        max_batch: int,
        max_waiting: int,
        is_end: Callable[[int], bool] = lambda token_id: False,
        max_pad_tokens: int = 24,
        workers: int = 1,
    ):
        if max_batch < 1 or max_waiting < 0 or workers < 1:
            raise ValueError("max_batch and workers must be at least 1 and max_waiting at least 0")
        self.generate = generate
        self.max_batch = max_batch  # prompts decoded together, at most
        self.max_waiting = max_waiting  # prompts queued behind the running batch before Busy
        self.is_end = is_end  # an end-of-reply token: the reply stops there and it is not shown
        # prompts in one batch differ in length by at most this many tokens: CTranslate2 reads a batch's prompts
        # at once only up to the shortest one and steps through the rest a token at a time, which costs more
        # than batching saves when lengths differ by hundreds (measured: bench figures in README "Measured")
        self.max_pad_tokens = max_pad_tokens
        self._waiting: list[_Request] = []
        self._ready = threading.Condition()
        self.workers = workers  # batches decoded at once (the backend runs them side by side)
        self._threads: list[threading.Thread] = []
        self.batches: list[int] = []  # the size of every batch run, for tests and benchmarks
        self._running = 0
        self.peak_running = 0  # the most batches ever decoded at once (up to `workers`), for tests and benchmarks

    def submit(self, prompt: list[str], max_new_tokens: int) -> Iterator[int | Generated]:
        """Queue `prompt`; yields its token ids as they are decoded, then one `Generated`."""
        request = _Request(prompt, max_new_tokens)
        with self._ready:
            if len(self._waiting) >= self.max_waiting:
                raise Busy(
                    "We're answering a lot of customers right now; please try again in a minute.", retry_after_s=30
                )
            self._threads = [t for t in self._threads if t.is_alive()]
            while len(self._threads) < self.workers:
                self._threads.append(
                    threading.Thread(target=self._run, daemon=True, name=f"generation-batcher-{len(self._threads)}")
                )
                self._threads[-1].start()
            self._waiting.append(request)
            self._ready.notify()
        while True:
            event = request.events.get()
            if isinstance(event, BaseException):
                raise event
            yield event
            if isinstance(event, Generated):
                return

    def _next_batch(self) -> list[_Request]:
        """The oldest waiting prompt and, oldest first, those of a length close to it, up to `max_batch`."""
        with self._ready:
            while not self._waiting:
                self._ready.wait()
            first = self._waiting[0]
            batch = [r for r in self._waiting if abs(len(r.prompt) - len(first.prompt)) <= self.max_pad_tokens]
            batch = batch[: self.max_batch]
            chosen = set(map(id, batch))
            self._waiting = [r for r in self._waiting if id(r) not in chosen]
            return batch

    def _run(self) -> None:
        while True:
            self._decode(self._next_batch())

    def _decode(self, batch: list[_Request]) -> None:
        def on_token(i: int, token_id: int) -> bool:
            request = batch[i]
            if request.finished:
                return True
            if self.is_end(token_id):
                request.finished = True
                return True
            request.produced += 1
            request.events.put(token_id)
            request.finished = request.produced >= request.max_new_tokens
            return request.finished

        with self._ready:
            self._running += 1
            self.peak_running = max(self.peak_running, self._running)
        started = time.perf_counter()
        try:
            self.generate([r.prompt for r in batch], max(r.max_new_tokens for r in batch), on_token)
        except Exception as exc:  # every caller of this batch learns of it; the worker goes on
            for request in batch:
                request.events.put(exc)
            return
        finally:
            with self._ready:
                self._running -= 1
        seconds = (time.perf_counter() - started) / self.workers  # a batch has its share of the machine
        self.batches.append(len(batch))
        tokens = [len(r.prompt) + r.produced for r in batch]
        total = sum(tokens) or 1
        for request, count in zip(batch, tokens):
            request.events.put(Generated(request.produced, seconds * count / total, len(batch)))
