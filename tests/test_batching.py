"""Concurrent replies decoded together: batching, each reply's own tokens, shared seconds, Busy."""

import threading
import time

import pytest

from chatbot.answer.batching import GenerationBatcher, Generated
from core.errors import Busy

END = 0


class FakeGenerator:
    """Decodes each prompt as the token ids of its words' lengths, then END; one step per 10 ms."""

    def __init__(self, started: threading.Event | None = None, release: threading.Event | None = None):
        self.calls: list[list[list[str]]] = []
        self.started, self.release = started, release

    def __call__(self, prompts, max_new_tokens, on_token):
        self.calls.append([list(p) for p in prompts])
        if self.started:
            self.started.set()
        if self.release:
            self.release.wait(5)
        done = [False] * len(prompts)
        for step in range(max_new_tokens + 1):
            for i, prompt in enumerate(prompts):
                if done[i]:
                    continue
                token = len(prompt[step]) if step < len(prompt) else END
                done[i] = on_token(i, token)
            time.sleep(0.01)
            if all(done):
                return


def collect(batcher, prompt, max_new_tokens, out, key):
    out[key] = list(batcher.submit(prompt, max_new_tokens))


def test_replies_queued_while_a_batch_runs_go_together_and_each_gets_its_own_tokens():
    started, release = threading.Event(), threading.Event()
    generate = FakeGenerator(started, release)
    batcher = GenerationBatcher(generate, max_batch=8, max_waiting=8, is_end=lambda t: t == END)
    out: dict = {}
    first = threading.Thread(target=collect, args=(batcher, ["a", "bb"], 10, out, "first"))
    first.start()
    started.wait(5)  # the first prompt is decoding alone; three more queue behind it
    others = [threading.Thread(target=collect, args=(batcher, ["ccc"] * (n + 1), 10, out, n)) for n in range(3)]
    for t in others:
        t.start()
    time.sleep(0.1)
    release.set()
    for t in [first, *others]:
        t.join(5)
    assert batcher.batches == [1, 3]  # one alone, then the three that waited, together
    assert out["first"][:-1] == [1, 2] and isinstance(out["first"][-1], Generated)
    for n in range(3):
        assert out[n][:-1] == [3] * (n + 1)  # its own tokens only, END not shown
        assert out[n][-1].batch_size == 3 and out[n][-1].completion_tokens == n + 1


def test_only_prompts_of_about_the_same_length_share_a_batch():
    started, release = threading.Event(), threading.Event()
    generate = FakeGenerator(started, release)
    batcher = GenerationBatcher(generate, max_batch=8, max_waiting=8, is_end=lambda t: t == END, max_pad_tokens=2)
    out: dict = {}
    first = threading.Thread(target=collect, args=(batcher, ["a"], 2, out, "first"))
    first.start()
    started.wait(5)
    lengths = {"short": 3, "long": 40, "short2": 4, "long2": 41}
    threads = []
    for key, n in lengths.items():  # queued in this order: short, long, short2, long2
        threads.append(threading.Thread(target=collect, args=(batcher, ["b"] * n, 2, out, key)))
        threads[-1].start()
        time.sleep(0.05)
    release.set()
    for t in [first, *threads]:
        t.join(5)
    assert [sorted(len(p) for p in call) for call in generate.calls] == [[1], [3, 4], [40, 41]]


def test_a_batch_s_seconds_are_shared_by_tokens_and_sum_to_the_batch():
    started, release = threading.Event(), threading.Event()
    batcher = GenerationBatcher(FakeGenerator(started, release), max_batch=4, max_waiting=4, is_end=lambda t: t == END)
    out: dict = {}
    blocker = threading.Thread(target=collect, args=(batcher, ["x"], 5, out, "blocker"))
    blocker.start()
    started.wait(5)
    short = threading.Thread(target=collect, args=(batcher, ["a"], 5, out, "short"))
    long = threading.Thread(target=collect, args=(batcher, ["a"] * 7, 20, out, "long"))
    short.start(), long.start()
    time.sleep(0.1)
    began = time.perf_counter()
    release.set()
    for t in (blocker, short, long):
        t.join(5)
    elapsed = time.perf_counter() - began
    short, long = out["short"][-1], out["long"][-1]
    assert short.batch_size == long.batch_size == 2
    assert long.compute_s == pytest.approx(short.compute_s * (7 + 7) / (1 + 1), rel=1e-6)  # prompt + completion tokens
    assert short.compute_s + long.compute_s <= elapsed


def test_two_workers_decode_two_batches_side_by_side_and_each_charges_half_its_seconds():
    calls = []
    both_running = threading.Barrier(2, timeout=5)  # broken (an error) unless two batches run at once

    def generate(prompts, max_new_tokens, on_token):
        calls.append(len(prompts))
        both_running.wait()
        time.sleep(0.2)
        for i in range(len(prompts)):
            on_token(i, END)

    batcher = GenerationBatcher(
        generate, max_batch=8, max_waiting=8, is_end=lambda t: t == END, max_pad_tokens=2, workers=2
    )
    out: dict = {}
    threads = [threading.Thread(target=collect, args=(batcher, ["a"] * n, 5, out, n)) for n in (3, 40)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    elapsed = time.perf_counter() - began
    assert calls == [1, 1] and sorted(batcher.batches) == [1, 1] and batcher.peak_running == 2
    assert elapsed < 0.4  # side by side, not one after the other
    for n in (3, 40):
        assert out[n][-1].compute_s == pytest.approx(0.1, abs=0.05)  # 0.2 s on half the machine


def test_max_new_tokens_ends_a_reply_without_ending_the_others():
    batcher = GenerationBatcher(FakeGenerator(), max_batch=4, max_waiting=4, is_end=lambda t: t == END)
    tokens = list(batcher.submit(["aaaa"] * 10, 3))
    assert tokens[:-1] == [4, 4, 4] and tokens[-1].completion_tokens == 3


def test_a_full_queue_answers_busy_at_once():
    started, release = threading.Event(), threading.Event()
    batcher = GenerationBatcher(FakeGenerator(started, release), max_batch=1, max_waiting=1)
    out: dict = {}
    running = threading.Thread(target=collect, args=(batcher, ["a"], 2, out, "running"))
    running.start()
    started.wait(5)
    queued = threading.Thread(target=collect, args=(batcher, ["b"], 2, out, "queued"))
    queued.start()
    time.sleep(0.05)
    with pytest.raises(Busy) as refused:
        next(batcher.submit(["c"], 2))
    assert refused.value.retry_after_s > 0 and "try again" in str(refused.value)
    release.set()
    running.join(5), queued.join(5)
    assert len(out["running"]) == len(out["queued"]) == 3


def test_a_failing_batch_raises_in_every_caller_and_the_next_batch_runs():
    calls = []

    def generate(prompts, max_new_tokens, on_token):
        calls.append(len(prompts))
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        on_token(0, 5)

    batcher = GenerationBatcher(generate, max_batch=2, max_waiting=2)
    with pytest.raises(RuntimeError, match="out of memory"):
        list(batcher.submit(["a"], 1))
    assert list(batcher.submit(["a"], 1))[0] == 5


@pytest.mark.e2e
def test_batched_ctranslate2_replies_match_one_at_a_time_and_carry_their_share(tmp_path, tokenizer_dir):
    from chatbot.answer.export import export_ctranslate2
    from chatbot.answer.llm import Message
    from chatbot.answer.llm_ct2 import CTranslate2ChatModel
    from finetune.testing import tiny_llama

    model = tiny_llama(tmp_path / "model", tokenizer_dir, layers=2, hidden_size=64, seed=3)
    export_ctranslate2(model, tmp_path / "f32", "float32")
    questions = [f"Question {n}: how long do returns take for order {n * 7}?" for n in range(6)]

    def reply(llm, question):
        tokens = list(llm.stream([Message("user", question)], 12))
        return "".join(t.text for t in tokens), tokens[-1]

    def at_once(llm) -> dict:
        """Every question asked at the same time, each from its own thread: question -> (text, last token)."""
        out: dict = {}
        threads = [threading.Thread(target=lambda q=q: out.__setitem__(q, reply(llm, q))) for q in questions]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return out

    alone = CTranslate2ChatModel(str(tmp_path / "f32"), "tiny", "cpu", 1, 1.0)
    expected = {q: reply(alone, q)[0] for q in questions}
    batched = CTranslate2ChatModel(str(tmp_path / "f32"), "tiny", "cpu", 1, 1.0, max_batch=8, max_waiting=8)
    batched.warm_up()
    out = at_once(batched)
    assert {q: text for q, (text, _) in out.items()} == expected
    assert all(done.done and done.compute_s is not None and done.compute_s > 0 for _, done in out.values())
    assert max(batched._batcher.get().batches) > 1  # some replies really shared a batch

    # the CPU default: max_batch 0 (one reply per batch), two decoded side by side on a thread each
    side_by_side = CTranslate2ChatModel(
        str(tmp_path / "f32"), "tiny", "cpu", 2, 1.0, max_batch=0, max_waiting=8, parallel_batches=2
    )
    side_by_side.warm_up()
    assert side_by_side._thread_split() == (2, 1) and side_by_side._queued()
    assert {q: text for q, (text, _) in at_once(side_by_side).items()} == expected
    assert max(side_by_side._batcher.get().batches) == 1
