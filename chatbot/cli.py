"""The `chatbot` command line: a thin adapter from flags to the builder and the pipeline.

Contract relied on by checks outside the repo (keep it stable, extend compatibly):
- `chatbot ingest SOURCE... --index DIR`
- `chatbot search "QUESTION" --index DIR -k 5 --json` -> {"results": [{doc_id, title, url, score, text}]}
- `chatbot ask "QUESTION" --index DIR --db URL [--conversation ID] --json`
- `chatbot report --db URL --json`
A `ChatbotError` becomes one line on stderr and exit code 2; heavy imports happen per command.
`report`, `eval` and `calibrate` live in `chatbot.cli_evaluation`, the options and config every command
shares in `chatbot.cli_common`; both are re-exported here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# the options and config every command shares, and the measuring commands, live in their own modules;
# re-exported here, where other packages' commands import them
from chatbot.cli_common import CONFIG_KEY, add_common, config_dest, config_from_args, progress  # noqa: F401
from chatbot.cli_evaluation import cmd_calibrate, cmd_eval, cmd_report  # noqa: F401
from chatbot.cli_evaluation import register as _add_evaluation_commands
from core.errors import BadInput, ChatbotError

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: one line, exit 2
        print(f"chatbot: {message} (see 'chatbot --help')", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def cmd_setup(args: argparse.Namespace) -> int:
    from chatbot.models import provision

    paths = provision(progress)
    if args.json:
        print(json.dumps({"models": paths}))
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from chatbot.builder import build_index
    from chatbot.work_meter import metered, work_device
    from knowledge.ingest import read_documents

    config = config_from_args(args)
    index = build_index(config)
    index.check_directory()  # before reading anything
    reading = read_documents(args.sources)  # bad files and rows are reported, the rest ingested
    _report_reading(reading, args.sources)
    with metered(config.db_url, "ingest", work_device(config), {"sources": len(args.sources)}):
        report = index.ingest(
            reading.documents,
            config.chunking.max_chars,
            config.chunking.overlap_chars,
            rebuild=args.rebuild,
            progress=progress,
            skipped=reading.skipped,
        )
        practice = _write_practice(config, index, args.practice)
        reranker = _retrain_reranker(config, index)
        calibration = _recalibrate(config, index)
    from chatbot.records.store import Store
    from chatbot.verbs import publish_version

    publish_version(Store(config.db_url), index)  # the servers on this folder and database load it live
    if args.json:
        print(
            json.dumps(
                {
                    "index": str(index.directory),
                    **report.to_json(),
                    **({"reranker": reranker} if reranker is not None else {}),
                    **({"practice": practice} if practice is not None else {}),
                    **({"calibration": calibration} if calibration is not None else {}),
                }
            )
        )
    else:
        _print_ingest(index, report, reranker, calibration)
        if practice is not None:
            print(_practice_line(practice))
    return 0


def cmd_practice(args: argparse.Namespace) -> int:
    from chatbot.builder import build_index
    from chatbot.practice import ensure_practice, question_set
    from core.files import write_atomic

    config = config_from_args(args)
    index = build_index(config).load()
    figures = ensure_practice(config, index, progress)
    if args.out:
        rows = question_set(index)
        write_atomic(args.out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        figures["question_set"] = {"path": args.out, "questions": len(rows)}
    if args.json:
        print(json.dumps(figures))
    else:
        print(
            f"{_practice_line(figures)} ({figures['written_now']} written now in {figures['wall_s']:.0f} s, "
            f"${figures['cost_usd']:.4f})" + (f"; question set in {args.out}" if args.out else "")
        )
    return 0


def _practice_line(figures: dict) -> str:
    return f"practice questions: {figures['kept']} of {figures['questions']} kept, {figures['sections']} sections"


def _report_reading(reading, sources: list[str]) -> None:
    """On stderr: how many documents were read from `sources`, then each file or row left out."""
    if not reading.documents:  # with nothing read, the ingest's one-line error names what was wrong
        return
    progress(
        f"read {len(reading.documents)} documents from {', '.join(sources)}"
        + (f"; {len(reading.skipped)} files or rows left out:" if reading.skipped else "")
    )
    for skipped in reading.skipped:
        progress(f"  skipped {skipped}")


def _write_practice(config, index, asked: bool) -> dict | None:
    """With `--practice` or `[practice] enabled`, the practice questions written for new or changed sections."""
    if not (asked or config.practice.enabled):
        return None
    from chatbot.practice import ensure_practice

    return ensure_practice(config, index.load(), progress)


def _retrain_reranker(config, index) -> dict | None:
    """With [retrieval] rerank on, the reranker's figures after training it (when the documents changed)."""
    if not config.retrieval.rerank:  # trained on the help centre just indexed; again only when it changed
        return None
    from chatbot.builder import train_reranker

    meta = train_reranker(config, index, progress)
    return {key: meta.get(key) for key in ("trained", "questions", "train_seconds", "size_mb")}


def _recalibrate(config, index) -> dict | None:
    """With a trained decision and calibration questions configured, what `calibrate_decision` stored."""
    if not (config.grounding.calibration_questions and config.grounding.trained_decision):
        return None
    from chatbot.builder import calibrate_decision

    # the decision is retrained for the new documents and its threshold chosen again, unless up to date
    return calibrate_decision(
        config, index.load(), config.grounding.calibration_questions, progress=progress, only_if_stale=True
    )


def _print_ingest(index, report, reranker: dict | None, calibration: dict | None) -> None:
    """The ingest's outcome as text: the index's counts, then the answer decision's and the reranker's."""
    print(
        f"index {index.directory}: {report.documents} documents, {report.chunks} chunks "
        f"({report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.removed} removed)"
        + (f"; {len(report.skipped)} files or rows left out (listed above)" if report.skipped else "")
    )
    if calibration is not None:
        print(
            f"answer decision: {'up to date' if calibration['up_to_date'] else 'calibrated'}, threshold "
            f"{calibration['threshold']:.4f} (precision {calibration['precision']:.0%} on "
            f"{calibration['questions']} {calibration['split']} questions, target {calibration['target_precision']:.0%})"
        )
    if reranker is not None:
        print(
            f"reranker: {'trained' if reranker['trained'] else 'up to date'} "
            f"({reranker['questions']} pseudo-questions, {reranker['train_seconds']} s to train, "
            f"{reranker['size_mb']} MB)"
        )


def cmd_search(args: argparse.Namespace) -> int:
    from chatbot.builder import build_index, build_searcher
    from chatbot.pipeline import clean_question

    question = clean_question(args.question)
    if args.k < 1:
        raise ChatbotError("-k must be at least 1")
    config = config_from_args(args)
    searcher = build_searcher(config, build_index(config).load())
    passages = searcher.search_documents(question, k=args.k)
    results = [
        {
            "doc_id": p.doc_id,
            "title": p.chunk.title,
            "url": p.chunk.url,
            "score": round(p.score, 6),
            "cosine": round(p.dense_cosine, 4),
            "heading": " > ".join(p.chunk.headings),
            "text": p.chunk.text,
        }
        for p in passages
    ]
    if args.json:
        print(json.dumps({"results": results}, ensure_ascii=False))
    else:
        for rank, r in enumerate(results, start=1):
            print(f"{rank}. {r['title']} [{r['doc_id']}] score={r['score']:.4f} cos={r['cosine']:.2f}")
            print(f"   {r['text'][:200].replace(chr(10), ' ')}")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from chatbot.builder import build_pipeline
    from chatbot.pipeline import Turn, clean_question

    if not args.audio and not args.image:
        clean_question(args.question)  # fail fast, before any model loads
    pipeline = build_pipeline(config_from_args(args), progress, speech=bool(args.audio), vision=bool(args.image))
    pipeline.warm_up()  # load the models before the turn is metered
    reply = pipeline.ask(
        Turn(args.question, audio=args.audio, image=args.image, conversation_id=args.conversation, channel="cli")
    )
    if args.json:
        print(json.dumps(reply.to_json(), ensure_ascii=False))
    else:
        print(reply.answer)
        for number, source in enumerate(reply.sources, start=1):
            print(f"  [{number}] {source.title} {source.url}".rstrip())
        if reply.handoff.needed:
            print(f"  (handed over to a person: {reply.handoff.reason})")
        print(
            f"  conversation {reply.conversation_id} · {reply.usage.prompt_tokens}+{reply.usage.completion_tokens} tokens"
            f" · ${reply.cost.cost_usd:.6f} (API shadow ${reply.cost.api_shadow_cost_usd:.6f})"
        )
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from chatbot.builder import build_speech

    config = config_from_args(args)
    if args.model:
        config = config.with_overrides({"speech": {"model": args.model}})
    speech = build_speech(config, progress)
    speech.warm_up()
    transcript = speech.transcribe(args.file)
    if args.json:
        print(
            json.dumps(
                {
                    "text": transcript.text,
                    "language": transcript.language,
                    "audio_seconds": round(transcript.audio_s, 3),
                    "asr_seconds": round(transcript.asr_s, 3),
                    "real_time_factor": round(transcript.asr_s / transcript.audio_s, 3),
                    "model": speech.name,
                },
                ensure_ascii=False,
            )
        )
    else:
        print(transcript.text)
    return 0


def _rerank_flag(p: argparse.ArgumentParser, what: str) -> None:
    from core.config import default

    p.add_argument(
        "--rerank",
        action=argparse.BooleanOptionalAction,
        dest=config_dest("retrieval.rerank"),
        help=f"{what} (config [retrieval] rerank, default {str(default('retrieval.rerank')).lower()})",
    )


# Packages that add their own commands declare an entry point in this group (pyproject.toml):
# `register(subparsers)`; each command sets `func(args) -> int` and raises ChatbotError for bad
# input, like the commands here. The engine names none of them, so it imports neither ui nor finetune.
COMMAND_GROUP = "chatbot.commands"


def _add_answer_commands(sub) -> None:
    """Add setup, ingest, search, ask and transcribe: provision the models, build the index, answer from it."""
    p = sub.add_parser("setup", help="provision the offline default models (idempotent)")
    add_common(p)
    p.set_defaults(func=cmd_setup)

    p = sub.add_parser("ingest", help="add help-centre files or folders to an index")
    p.add_argument(
        "sources", nargs="+", metavar="SOURCE", help="Markdown, HTML, PDF, TXT, FAQ CSV or JSONL files or folders"
    )
    p.add_argument("--rebuild", action="store_true", help="discard the existing index and build anew")
    p.add_argument(
        "--practice",
        action="store_true",
        help="write practice questions for new or changed sections with [practice] model (as [practice] enabled)",
    )
    _rerank_flag(p, "train the help centre's reranker into the index after indexing (when the documents changed)")
    add_common(p, index=True, db=True)  # --db: where the run's seconds are recorded (the cost of ownership)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("practice", help="practice questions for each section, written by [practice] model")
    p.add_argument("--out", metavar="FILE.jsonl", help="also write them as a question set (a synthetic dev split)")
    add_common(p, index=True, db=True)
    p.set_defaults(func=cmd_practice)

    p = sub.add_parser("search", help="hybrid search of the index, one result per document")
    p.add_argument("question")
    p.add_argument("-k", type=int, default=5, help="number of documents (default 5)")
    _rerank_flag(p, "reorder the top fused chunks with the index's trained reranker")
    add_common(p, index=True)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="answer a customer question from the index")
    p.add_argument("question", nargs="?", default="", help="the question (optional with --audio or --image)")
    p.add_argument(
        "--audio", metavar="FILE", help="a spoken question (wav, mp3, ogg, webm, m4a): its transcript is the question"
    )
    p.add_argument("--image", metavar="FILE", help="a screenshot: its text (OCR) joins the question")
    p.add_argument("--conversation", help="continue this conversation id")
    p.add_argument("--model", help="LLM: a registered name, local folder or hub id")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("-k", type=int, help="passages in the prompt")
    add_common(p, index=True, db=True)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("transcribe", help="speech to text with the configured Whisper model")
    p.add_argument("file", help="audio file: wav, mp3, ogg, webm, m4a, any sample rate")
    p.add_argument("--model", help="whisper-base, whisper-tiny.en, or a CTranslate2 Whisper folder")
    add_common(p)
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("demo-orders", help="run the demo shop's order service, which the demo's actions call")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--db", default=".chatbot/demo-orders.db", help="its SQLite file, made from --orders when missing")
    p.add_argument("--orders", default="demo/orders.jsonl", help="the fictional orders a new --db starts with")
    p.set_defaults(func=cmd_demo_orders)


def cmd_demo_orders(args: argparse.Namespace) -> int:
    """The demo shop's order service, until interrupted; $CHATBOT_ORDERS_TOKEN, when set, is required of callers."""
    import os

    from chatbot.demo_orders import serve

    if not Path(args.db).is_file() and not Path(args.orders).is_file():
        raise BadInput(f"{args.orders} does not exist; pass --orders with the demo's orders.jsonl")
    progress(f"demo order service on http://{args.host}:{args.port} over {args.db}")
    serve(args.host, args.port, args.db, args.orders, os.environ.get("CHATBOT_ORDERS_TOKEN", ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import entry_points

    parser = _Parser(prog="chatbot", description="Self-hosted customer-service assistant grounded in your help centre.")
    parser.add_argument("--config", help="TOML config file (default: $CHATBOT_CONFIG or ./chatbot.toml)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_answer_commands(sub)
    _add_evaluation_commands(sub)

    for plugin in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        plugin.load()(sub)
    return parser


def _quiet_libraries() -> None:
    """Model-loading progress bars are noise on a command line; errors still show."""
    import os

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    try:
        return args.func(args)
    except ChatbotError as exc:
        print(f"chatbot: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
