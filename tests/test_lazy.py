import threading
import time

import pytest

from core.lazy import Lazy


def test_the_loader_runs_once_however_many_threads_ask_at_once():
    calls = []

    def load():
        calls.append(1)
        time.sleep(0.05)  # a slow model load: the other threads must wait for it, not start their own
        return object()

    lazy = Lazy(load)
    assert not lazy.loaded and calls == []  # constructing loads nothing
    got = []
    threads = [threading.Thread(target=lambda: got.append(lazy.get())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 8 and all(g is got[0] for g in got) and lazy.loaded


def test_a_failed_load_is_not_cached_and_the_next_get_tries_again():
    attempts = []

    def load():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("model folder missing")
        return "model"

    lazy = Lazy(load)
    with pytest.raises(RuntimeError):
        lazy.get()
    assert not lazy.loaded
    assert lazy.get() == "model" and lazy.get() == "model" and len(attempts) == 2
