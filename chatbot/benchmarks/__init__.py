"""`chatbot bench`: each of our paths beside the baseline a user would otherwise run, in one process, on
the same inputs (llm, embed, ingest, retrieval, asr, turn), as a table and as JSON.

The figures are recorded as a "bench" run in the conversation database, where the cost of ownership
reads the int8-against-fp32 lever from them. Speed is measured here, never asserted in a test. `quick`
sizes every part to run in a few minutes (CI runs it once); the full run is what the README's table
shows. It knows the demo help centre and, when present, the Arduino one in `../shared/data`; what the
figures mean for a bill is `chatbot.reporting.ownership`'s business.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from chatbot.work_meter import cpu_seconds

ROOT = Path(__file__).resolve().parents[2]
DEMO_DOCS = ROOT / "demo" / "help-centre"
DEMO_QUESTIONS = ROOT / "demo" / "questions.jsonl"
ARDUINO_DOCS = ROOT.parent / "shared" / "data" / "arduino-help-center" / "content"
PARTS = ("embed", "ingest", "retrieval", "asr", "turn", "llm")  # the order they run in

Progress = Callable[[str], None]


def sizes(quick: bool) -> dict:
    """How much of each part runs: quick for CI, full for the README."""
    if quick:
        return {
            "tokens": 24,
            "sentences": 128,
            "documents": 20,
            "chunks": (10_000,),
            "queries": 10,
            "clips": 1,
            "turns": 4,
        }
    return {
        "tokens": 64,
        "sentences": 2000,
        "documents": 0,
        "chunks": (10_000, 100_000),
        "queries": 50,
        "clips": 3,
        "turns": 24,
    }


def corpus() -> Path:
    """The help centre the ingest benchmark reads: Arduino's (414 articles) when present, else the demo's."""
    return ARDUINO_DOCS if ARDUINO_DOCS.is_dir() else DEMO_DOCS


def run_bench(config, quick: bool = False, parts: Sequence[str] = PARTS, progress: Progress = lambda m: None) -> dict:
    """Every part in `parts`; returns {part: figures}, with "device", "quick" and "seconds"."""
    import tempfile

    from chatbot.answer.llm import pick_device

    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        from core.errors import BadInput

        raise BadInput(f"unknown benchmark part(s) {', '.join(unknown)}; choose from: {', '.join(PARTS)}")
    n = sizes(quick)
    began = time.perf_counter()
    out: dict = {"device": pick_device(config.models.device), "quick": quick}
    with tempfile.TemporaryDirectory(prefix="chatbot-bench-") as tmp:
        work = Path(tmp)
        for part in PARTS:
            if part in parts:
                progress(f"bench: {part}...")
                out[part] = RUNNERS[part](config, n, work, progress)
                progress(f"bench: {part}: {json.dumps(out[part])}")
    out["seconds"] = round(time.perf_counter() - began, 1)
    return out


def _sentences(limit: int) -> list[str]:
    from knowledge.chunking import split_sentences
    from knowledge.ingest import iter_documents

    found: list[str] = []
    for document in iter_documents([str(corpus())]):
        found += [s for s in split_sentences(document.text) if len(s.split()) >= 4]
        if len(found) >= limit:
            break
    return found[:limit]


def _llm(config, n: dict, work: Path, progress: Progress) -> dict:
    from chatbot.benchmarks.llm_bench import llm_bench
    from chatbot.builder import build_llm_for
    from chatbot.models import smollm2_int8_path, smollm2_path

    ours, _ = build_llm_for(config, "smollm2-135m-instruct-int8", progress)
    text = " ".join(_sentences(200))
    return llm_bench(ours, smollm2_int8_path(progress), smollm2_path(progress), text, n["tokens"])


def _embed(config, n: dict, work: Path, progress: Progress) -> dict:
    from chatbot.benchmarks.search_bench import embed_bench
    from chatbot.builder import build_embedder
    from chatbot.models import EMBEDDERS, resolve

    path = resolve(config.models.embedder, EMBEDDERS, "embedder", progress)
    return embed_bench(build_embedder(config, progress), path, _sentences(n["sentences"]))


def _ingest(config, n: dict, work: Path, progress: Progress) -> dict:
    """The help centre ingested from scratch into a new index: wall and CPU seconds by stage."""
    from chatbot.answer.calibration import DecisionSettings, pseudo_examples
    from chatbot.answer.replies import MAX_QUOTE_CHARS
    from chatbot.builder import build_checker, build_embedder, build_searcher
    from knowledge.index import KnowledgeIndex
    from knowledge.ingest import read_documents

    stages: dict[str, dict] = {}
    clock = [time.perf_counter(), cpu_seconds()]

    def stage(name: str) -> None:
        now = [time.perf_counter(), cpu_seconds()]
        stages[name] = {"wall_s": round(now[0] - clock[0], 2), "cpu_s": round(now[1] - clock[1], 2)}
        clock[:] = now

    embedder = build_embedder(config, progress)
    embedder.warm_up()
    stage("load_embedder")
    documents = read_documents([str(corpus())]).documents
    documents = documents[: n["documents"]] if n["documents"] else documents
    stage("parse")
    index = KnowledgeIndex(work / "ingest-index", embedder)
    report = index.ingest(documents, config.chunking.max_chars, config.chunking.overlap_chars, progress=lambda m: None)
    stage("chunk_embed_sentences")
    index.load(progress=lambda m: None)
    g = config.grounding
    settings = DecisionSettings(config.retrieval.k, g.quote_sentences, MAX_QUOTE_CHARS, g.decision_max_questions)
    pseudo_examples(build_searcher(config, index), build_checker(config, embedder), settings)
    stage("decision_training")
    total = {k: round(sum(s[k] for n_, s in stages.items() if n_ != "load_embedder"), 2) for k in ("wall_s", "cpu_s")}
    return {"corpus": str(corpus()), "documents": report.documents, "chunks": report.chunks, **total, "stages": stages}


def _retrieval(config, n: dict, work: Path, progress: Progress) -> dict:
    from chatbot.benchmarks.search_bench import retrieval_bench
    from chatbot.builder import build_embedder

    embedder = build_embedder(config, progress)
    texts = _sentences(max(n["sentences"], 500))
    questions = [q["question"] for q in _demo_questions()][: n["queries"]]
    return retrieval_bench(embedder, texts, questions, n["chunks"])


def _asr(config, n: dict, work: Path, progress: Progress) -> dict:
    from chatbot.benchmarks.turn_bench import asr_bench, spoken_clips
    from chatbot.builder import build_speech
    from chatbot.models import SPEECH, resolve

    clips = spoken_clips(work, _spoken(n["clips"]))
    return asr_bench(build_speech(config, progress), resolve(config.speech.model, SPEECH, "speech model"), clips)


def _turn(config, n: dict, work: Path, progress: Progress) -> dict:
    """Turns on the configured index (the demo's after `make run`), else on a new calibrated demo index."""
    from chatbot.benchmarks.turn_bench import spoken_clips, turn_bench
    from chatbot.builder import build_pipeline

    if not (Path(config.index_dir) / "manifest.json").is_file():
        config = _demo_index(config, work / "demo-index", progress)
    config = config.with_overrides({"db_url": f"sqlite:///{work / 'turns.db'}"})
    questions = [q["question"] for q in _demo_questions() if not q.get("turns") and not q.get("action")]
    clips = spoken_clips(work, _spoken(n["clips"]))
    pipeline = build_pipeline(config, progress, speech=True)
    return {"index": config.index_dir, **turn_bench(pipeline, questions[: n["turns"]], clips)}


def _demo_index(config, folder: Path, progress: Progress):
    """`config` pointed at a new index of the demo help centre, its decision calibrated on the demo's dev split."""
    from chatbot.builder import build_index, calibrate_decision
    from knowledge.ingest import read_documents

    config = config.with_overrides({"index_dir": str(folder)})
    index = build_index(config)
    index.ingest(read_documents([str(DEMO_DOCS)]).documents, config.chunking.max_chars, config.chunking.overlap_chars)
    calibrate_decision(config, index.load(progress=lambda m: None), DEMO_QUESTIONS, progress=progress)
    return config


def _demo_questions() -> list[dict]:
    return [json.loads(line) for line in DEMO_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]


def _spoken(count: int) -> list[str]:
    from chatbot.benchmarks.turn_bench import SPOKEN

    return list(SPOKEN[:count])


RUNNERS: dict[str, Callable[[object, dict, Path, Progress], dict]] = {
    "llm": _llm,
    "embed": _embed,
    "ingest": _ingest,
    "retrieval": _retrieval,
    "asr": _asr,
    "turn": _turn,
}


def table(results: dict) -> str:
    """The figures as a Markdown table: part, ours, baseline, ratio."""
    rows = ["| part | ours | baseline | ours / baseline |", "|---|---|---|---|"]
    llm, embed, asr = results.get("llm"), results.get("embed"), results.get("asr")
    if llm:
        rows.append(
            f"| LLM decode, tokens/s ({llm['prompt_tokens']}-token prompt) | {llm['tokens_per_s']} (int8) | "
            f"{llm['baseline_tokens_per_s']} (fp32 generate) | {llm['speedup']}x |"
        )
        rows.append(f"| LLM time to first token, s | {llm['ttft_s']} | {llm['baseline_ttft_s']} | |")
        rows.append(f"| η (bandwidth {llm['bandwidth_gbps']} GB/s) | {llm['eta']} | {llm['baseline_eta']} | |")
    if embed:
        rows.append(
            f"| embed, sentences/s | {embed['sentences_per_s']} | {embed['baseline_sentences_per_s']} | {embed['speedup']}x |"
        )
    if asr:
        rows.append(f"| speech, real-time factor | {asr['rtf']} | {asr['baseline_rtf']} | {asr['speedup']}x faster |")
    for size, figures in (results.get("retrieval") or {}).items():
        rows.append(f"| retrieval at {size} chunks, p50 / p99 ms | {figures['p50_ms']} / {figures['p99_ms']} | | |")
    if results.get("ingest"):
        i = results["ingest"]
        rows.append(f"| ingest {i['documents']} documents, wall / CPU s | {i['wall_s']} / {i['cpu_s']} | | |")
    for outcome, figures in (results.get("turn") or {}).items():
        if isinstance(figures, dict):
            rows.append(
                f"| turn ({outcome}), p50 / p95 s | {figures['p50_s']} / {figures['p95_s']} ({figures['turns']}) | | |"
            )
    return "\n".join(rows)


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
