"""Practice questions: a bigger model writes customer-style questions for each section of the help centre,
and a question is kept only when retrieval finds the section it was written from.

They are the one input the answer decision and the reranker otherwise lack: questions worded as
customers write (titles and headings are not), for any help centre, with no labelled set. The writer
is a `ChatModel` (Qwen2.5-Coder-1.5B-Instruct int8 by default: not a safe writer of answers, a
plausible writer of questions). Decoding is greedy, so a section's questions are the same on every
run; the wording is varied by asking for each question in another customer's voice (voices rotate
from section to section), and near-duplicates are dropped (`rapidfuzz`). Written questions are cached
per section version in the index (`knowledge.practice`); a run writes only new or changed sections.
It does not know whether a question is worded as *this* company's customers write, or whether the
section answers it in full: kept means retrieval found its section in the top `k`, nothing more.
"""

from __future__ import annotations

import dataclasses
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from chatbot.answer.llm import ChatModel, Message
from chatbot.work_meter import cpu_seconds
from core.errors import ChatbotError
from knowledge.practice import Section, Written, current, read, sections, store

PROMPT_VERSION = 1
SEED = 13
VOICES = (
    "a first-time customer writing casually",
    "an annoyed customer in a hurry",
    "a customer who writes very briefly, with a typo or two",
    "a customer who first explains their situation in a sentence",
    "a customer whose first language is not English",
    "a customer who describes the problem without knowing the right terms",
)
MIN_WORDS, MAX_WORDS = 3, 60
SIMILAR = 88  # rapidfuzz token-set ratio at or above which two questions, or a question and a sentence, are one
STORE_EVERY = 10  # sections written between saves of the cache, so an interrupted run keeps most of its work

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PracticeSettings:
    """Every default lives in `core.config` ([practice]); the builder passes them."""

    questions_per_section: int
    max_sections: int  # 0: all
    section_chars: int
    max_new_tokens: int
    k: int  # a question is kept when its section is among the first k passages retrieved
    workers: int = 1  # sections written at once (CTranslate2 on CPU: [generation] parallel_batches, a core each)


def chosen_sections(all_sections: Sequence[Section], max_sections: int) -> list[Section]:
    """Every section, or a seeded sample of `max_sections` of them (the same sample on every run)."""
    ordered = sorted(all_sections, key=lambda s: s.chunk_ids)
    if 0 < max_sections < len(ordered):
        return sorted(random.Random(SEED).sample(ordered, max_sections), key=lambda s: s.chunk_ids)
    return ordered


def messages(section: Section, n: int, company: str, turn: int) -> list[Message]:
    """The writer's prompt for one section: its text, and `n` voices (rotating with `turn`)."""
    voices = [VOICES[(turn + i) % len(VOICES)] for i in range(n)]
    place = " > ".join((section.title, *section.headings))
    asks = "\n".join(f"{i + 1}. as {voice}" for i, voice in enumerate(voices))
    return [
        Message("system", f"You write realistic messages that customers send to {company}'s support team."),
        Message(
            "user",
            f"Help-centre article: {place}\n---\n{section.text}\n---\n"
            f"Write {n} different questions that a customer could send to support and that this article "
            f"answers. Write them in your own words, not the article's:\n{asks}\n"
            "Reply with the questions only, one per line, numbered.",
        ),
    ]


def parse(reply: str, section_text: str) -> list[str]:
    """The questions in the writer's reply: one per line, numbering, quotes and labels removed; too
    short or long ones, near-copies of the section's sentences and near-duplicates dropped."""
    from rapidfuzz import fuzz

    from knowledge.chunking import split_sentences

    sentences = split_sentences(section_text)
    out: list[str] = []
    for line in reply.splitlines():
        text = re.sub(r"^\s*(?:\d+[.)]|[-*•])\s*", "", line).strip()
        text = re.sub(r"^\*{0,2}[A-Z][\w ,'-]{0,40}:\*{0,2}\s+", "", text)  # "Annoyed customer: ..."
        text = text.strip().strip("\"“”'*").strip()
        if text.endswith(":") or not MIN_WORDS <= len(text.split()) <= MAX_WORDS:  # a label, not a question
            continue
        if any(fuzz.token_set_ratio(text, s) >= SIMILAR for s in sentences if len(s.split()) >= MIN_WORDS):
            continue  # the article's own words: a sentence would find itself
        if any(fuzz.token_set_ratio(text, seen) >= SIMILAR for seen in out):
            continue
        out.append(text)
    return out


def kept(searcher, questions: Sequence[str], section: Section, k: int) -> tuple[str, ...]:
    """The questions for which retrieval puts one of the section's chunks among the first `k` passages."""
    own = set(section.chunk_ids)
    return tuple(q for q in questions if any(p.chunk.chunk_id in own for p in searcher.search(q, k=k)))


def write_practice(
    llm: ChatModel,
    searcher,
    company: str,
    settings: PracticeSettings,
    progress: Progress = lambda m: print(m, file=sys.stderr),
) -> dict:
    """Write (or reuse) the practice questions of the index `searcher` searches, keep those retrieval
    finds their section for, and store them in the index folder; returns counts, seconds and CPU seconds."""
    index = searcher.index
    if not index.chunks:
        raise ChatbotError("the index is empty: ingest a help centre before writing practice questions for it")
    directory = index.directory
    todo = chosen_sections(sections(index.chunks.values()), settings.max_sections)
    cached = read(directory)
    keys = [s.key() for s in todo]
    written: dict[str, Written] = {key: cached[key] for key in keys if _reusable(cached.get(key), llm.name)}
    fresh = [(s, key) for s, key in zip(todo, keys) if key not in written]
    progress(
        f"practice questions: {len(todo)} sections, {len(todo) - len(fresh)} already written, "
        f"{len(fresh)} to write with {llm.name}"
    )
    started, cpu = time.perf_counter(), cpu_seconds()
    with ThreadPoolExecutor(max_workers=max(1, settings.workers)) as pool:  # each on its share of the cores
        jobs = [pool.submit(_write_one, llm, s, key, settings, company, turn) for turn, (s, key) in enumerate(fresh)]
        for done, job in enumerate(as_completed(jobs), start=1):
            one = job.result()
            written[one.key] = one
            if done % STORE_EVERY == 0 or done == len(fresh):
                store(directory, written.values())
                elapsed = time.perf_counter() - started
                progress(
                    f"  {done}/{len(fresh)} sections written, {elapsed / done:.1f} s each, "
                    f"~{elapsed / done * (len(fresh) - done) / 60:.0f} min left"
                )
    wall_s, cpu_s = time.perf_counter() - started, cpu_seconds() - cpu
    progress(f"checking which practice questions retrieval finds their section for (k={settings.k})")
    final = [
        dataclasses.replace(written[key], kept=kept(searcher, written[key].questions, s, settings.k))
        for s, key in zip(todo, keys)
    ]
    store(directory, final)
    total = sum(len(w.questions) for w in final)
    kept_n = sum(len(w.kept) for w in final)
    progress(f"practice questions: {kept_n} of {total} kept ({len(fresh)} sections written in {wall_s:.0f} s)")
    return {
        "writer": llm.name,
        "sections": len(todo),
        "written_now": len(fresh),
        "questions": total,
        "kept": kept_n,
        "wall_s": round(wall_s, 1),
        "cpu_s": round(cpu_s, 1),
        "s_per_section": round(wall_s / len(fresh), 2) if fresh else None,
    }


def _write_one(
    llm: ChatModel, section: Section, key: str, settings: PracticeSettings, company: str, turn: int
) -> Written:
    """One section's questions, as the writer wrote them (parsed, not yet checked against retrieval)."""
    began = time.perf_counter()
    shown = dataclasses.replace(section, text=section.text[: settings.section_chars])
    prompt = messages(shown, settings.questions_per_section, company, turn)
    reply = "".join(t.text for t in llm.stream(prompt, settings.max_new_tokens))
    questions = tuple(parse(reply, section.text))
    return Written(key, section.doc_id, llm.name, PROMPT_VERSION, questions, (), time.perf_counter() - began)


def _reusable(written: Written | None, writer: str) -> bool:
    return written is not None and written.writer == writer and written.version == PROMPT_VERSION


def practice_settings(config) -> PracticeSettings:
    p = config.practice
    return PracticeSettings(
        p.questions_per_section,
        p.max_sections,
        p.section_chars,
        p.max_new_tokens,
        config.retrieval.k,
        workers=config.generation.parallel_batches,
    )


def ensure_practice(config, index, progress: Progress = lambda m: print(m, file=sys.stderr)) -> dict:
    """The practice questions of `index` written with `[practice] model` (only sections not written yet),
    metered as model work ("practice") for the cost of ownership; returns `write_practice`'s figures
    with `cost_usd` (its wall seconds at the device's hourly price)."""
    from chatbot.builder import build_llm_for, build_prices, build_searcher
    from chatbot.work_meter import metered, work_device

    device = work_device(config)
    llm, _ = build_llm_for(config, config.practice.model, progress)
    with metered(config.db_url, "practice", device) as info:
        figures = write_practice(
            llm, build_searcher(config, index), config.company_name, practice_settings(config), progress
        )
        info.update({k: figures[k] for k in ("sections", "written_now", "kept")})
    cost = build_prices(config).machine_usd(device, figures["wall_s"])  # as the cost of ownership prices it
    return {**figures, "device": device, "cost_usd": round(cost, 6)}


def question_set(index) -> list[dict]:
    """Every question written for a section the index holds, kept by retrieval or not, as a `chatbot eval`
    question set (dev split, the section's document its answer, no fact checked): a synthetic dev set for
    `chatbot calibrate` where a company has no labelled questions. The unkept ones stay in: there
    retrieval misses, as it would for a customer."""
    return [
        {
            "id": f"practice-{written.key[:10]}-{n}",
            "question": question,
            "doc_ids": [section.doc_id],
            "answer_contains": [],
            "in_scope": True,
            "split": "dev",
        }
        for section, written in current(index.directory, index.chunks.values())
        for n, question in enumerate(written.questions)
    ]
