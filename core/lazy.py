"""Load-on-first-use, once, for the model wrappers: constructing one stays free.

    self._model = Lazy(self._load)   # in __init__: nothing loads yet
    def warm_up(self): self._model.get()
    def stream(self, ...): model = self._model.get()

`get()` runs the loader at most once even when several threads ask at the same time (the others
wait for it). A loader that raises leaves nothing cached, so the next `get()` tries again (after
the user has fixed what the error message said).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
_UNSET = object()


class Lazy(Generic[T]):
    def __init__(self, load: Callable[[], T]):
        self._load = load
        self._value: object = _UNSET
        self._lock = threading.Lock()

    def get(self) -> T:
        value = self._value
        if value is _UNSET:
            with self._lock:
                if self._value is _UNSET:
                    self._value = self._load()
                value = self._value
        return value  # type: ignore[return-value]

    @property
    def loaded(self) -> bool:
        return self._value is not _UNSET
