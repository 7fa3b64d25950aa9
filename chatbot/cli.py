"""The `chatbot` command line: a thin adapter from flags to the builder and the pipeline.

Contract relied on by checks outside the repo (keep it stable, extend compatibly):
- `chatbot ingest SOURCE... --index DIR`
- `chatbot search "QUESTION" --index DIR -k 5 --json` -> {"results": [{doc_id, title, url, score, text}]}
- `chatbot ask "QUESTION" --index DIR --db URL [--conversation ID] --json`
- `chatbot report --db URL --json`
A `ChatbotError` becomes one line on stderr and exit code 2; heavy imports happen per command.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from core.errors import ChatbotError

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: one line, exit 2
        print(f"chatbot: {message} (see 'chatbot --help')", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


CONFIG_KEY = "config:"  # a flag whose dest is this + a dotted config key overrides that key when given


def config_dest(key: str) -> str:
    """The argparse `dest` of a flag that overrides config key `key` (e.g. "finetune.lora.rank") when
    given; declare such a flag with no default, and give it a `metavar`."""
    return CONFIG_KEY + key


def config_from_args(args: argparse.Namespace):
    """The config tree: defaults < TOML file < the flags given (every command, plug-ins included)."""
    from core.config import load_config

    overrides: dict[str, Any] = {}
    if getattr(args, "index", None):
        overrides["index_dir"] = args.index
    if getattr(args, "db", None):
        overrides["db_url"] = args.db
    models = {}
    if getattr(args, "model", None):
        models["llm"] = args.model
    if getattr(args, "device", None):
        models["device"] = args.device
    if models:
        overrides["models"] = models
    if getattr(args, "k", None) and args.command == "ask":
        overrides["retrieval"] = {"k": args.k}
    for dest, value in vars(args).items():
        if dest.startswith(CONFIG_KEY) and value is not None:
            *sections, key = dest[len(CONFIG_KEY) :].split(".")
            node = overrides
            for section in sections:
                node = node.setdefault(section, {})
            node[key] = value
    return load_config(args.config, overrides)


def cmd_setup(args: argparse.Namespace) -> int:
    from chatbot.models import provision

    paths = provision(_progress)
    if args.json:
        print(json.dumps({"models": paths}))
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from chatbot.builder import build_index
    from knowledge.ingest import read_documents

    config = config_from_args(args)
    index = build_index(config)
    index.check_directory()  # before reading anything
    reading = read_documents(args.sources)  # bad files and rows are reported, the rest ingested
    if reading.documents:  # with nothing read, the one-line error below names what was wrong
        _progress(
            f"read {len(reading.documents)} documents from {', '.join(args.sources)}"
            + (f"; {len(reading.skipped)} files or rows left out:" if reading.skipped else "")
        )
        for skipped in reading.skipped:
            _progress(f"  skipped {skipped}")
    report = index.ingest(
        reading.documents,
        config.chunking.max_chars,
        config.chunking.overlap_chars,
        rebuild=args.rebuild,
        progress=_progress,
        skipped=reading.skipped,
    )
    reranker = None
    if config.retrieval.rerank:  # trained on the help centre just indexed; again only when it changed
        from chatbot.builder import train_reranker

        meta = train_reranker(config, index, _progress)
        reranker = {key: meta.get(key) for key in ("trained", "questions", "train_seconds", "size_mb")}
    calibration = None
    if config.grounding.calibration_questions and config.grounding.trained_decision:
        from chatbot.builder import calibrate_decision

        # the decision is retrained for the new documents and its threshold chosen again, unless up to date
        calibration = calibrate_decision(
            config, index.load(), config.grounding.calibration_questions, progress=_progress, only_if_stale=True
        )
    if args.json:
        print(
            json.dumps(
                {
                    "index": str(index.directory),
                    **report.to_json(),
                    **({"reranker": reranker} if reranker is not None else {}),
                    **({"calibration": calibration} if calibration is not None else {}),
                }
            )
        )
    else:
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
    return 0


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
    pipeline = build_pipeline(config_from_args(args), _progress, speech=bool(args.audio), vision=bool(args.image))
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
    speech = build_speech(config, _progress)
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


def cmd_report(args: argparse.Namespace) -> int:
    from chatbot.builder import build_prices, serving_model_name
    from chatbot.reporting.report import build_report
    from chatbot.records.store import Store

    config = config_from_args(args)
    report = build_report(Store(config.db_url), build_prices(config), serving_model_name(config))
    if args.json:
        print(json.dumps(report))
    else:
        print(f"serving model {report['serving_model']}")
        for split, scores in report["eval"].items():
            print(
                f"  eval {split} ({scores['questions']} questions, {scores['at'][:16]}): resolution "
                f"{scores['resolution_rate'] or 0:.0%}, correct {scores['correct_rate'] or 0:.0%}, "
                f"wrong {scores['wrong_rate'] or 0:.0%}"
                + (" (in-sample: the answer decision learned from these questions)" if scores.get("in_sample") else "")
            )
        print(
            f"conversations {report['conversations']}, messages {report['messages']}, "
            f"handoff rate {report['handoff_rate']:.0%} {report['handoff_reasons']}"
        )
        print(
            f"cost per conversation ${report['cost_per_conversation_usd']:.6f} self-hosted, "
            f"${report['api_shadow_cost_per_conversation_usd']:.6f} on {report['api_model']}, "
            f"${report['human_agent_cost_per_conversation_usd']:.2f} with a human agent"
        )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chatbot.reporting.evaluation import evaluate, load_questions, select, totals_table, write_report

    questions = select(load_questions(args.questions), args.split, args.limit)  # fail fast, before models load
    name = Path(args.questions).stem + ("" if args.split == "all" else f"-{args.split}")
    production = config_from_args(args)  # where the run's totals are recorded, beside the serving figures
    if not args.db:  # keep evaluation conversations out of the production database
        args.db = f"sqlite:///{Path('.chatbot/eval') / (name + '.db')}"
        Path(".chatbot/eval").mkdir(parents=True, exist_ok=True)
    from chatbot.builder import build_pipeline

    pipeline = build_pipeline(config_from_args(args), _progress)
    pipeline.warm_up()
    _progress(f"evaluating {len(questions)} questions from {args.questions} ({args.split}) on {args.db}")
    report = evaluate(pipeline, questions, _progress)
    path = write_report(args.out or Path(".chatbot/eval") / f"{name}.md", report, args.questions, args.split)
    if not args.limit:  # a partial run is a smoke test, not a score
        from chatbot.records.store import Store

        Store(production.db_url).stats.add_eval_run(
            report["totals"]["model"], str(args.questions), args.split, report["totals"]
        )
    _progress(f"report written to {path}")
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print("\n".join(totals_table(report["totals"])))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from chatbot.builder import build_index, calibrate_decision
    from chatbot.reporting.evaluation import load_questions, select

    if args.target_precision is not None and not 0 < args.target_precision <= 1:
        raise ChatbotError("--target-precision must be above 0 and at most 1, e.g. 0.9")
    select(load_questions(args.questions), args.split)  # fail fast, before the index and models load
    config = config_from_args(args)
    index = build_index(config).load()
    stored = calibrate_decision(config, index, args.questions, args.split, args.target_precision, _progress)
    if args.json:
        print(json.dumps(stored))
    else:
        print(
            f"answer decision {'trained' if stored['trained'] else 'up to date'}; threshold "
            f"{stored['threshold']:.4f} stored in {index.directory / 'manifest.json'}: on {stored['questions']} "
            f"{args.split} questions it answers {stored['answered']} ({stored['coverage']:.0%}), "
            f"{stored['correct']} correctly (precision {stored['precision']:.0%}, target "
            f"{stored['target_precision']:.0%}{'' if stored.get('reached_target', True) else ', not reached'})"
            + (
                f"; it learned from {stored['learned_from']} of them (weight {stored['question_weight']:g}, "
                f"out-of-fold probabilities)"
                if stored.get("question_weight")
                else ""
            )
        )
    return 0


def add_common(p: argparse.ArgumentParser, index: bool = False, db: bool = False) -> None:
    """Options every command shares; commands registered by other packages call it too."""
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--config", default=argparse.SUPPRESS, help="TOML config file (also accepted before the command)")
    if index:
        p.add_argument("--index", help="knowledge index folder (default from config: .chatbot/index)")
    if db:
        p.add_argument("--db", help="SQLAlchemy database URL (default: sqlite:///.chatbot/chatbot.db)")


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
    _rerank_flag(p, "train the help centre's reranker into the index after indexing (when the documents changed)")
    add_common(p, index=True)
    p.set_defaults(func=cmd_ingest)

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


def _add_evaluation_commands(sub) -> None:
    """Add report, eval and calibrate: totals of the served conversations, scores on a question set."""
    p = sub.add_parser("report", help="totals: conversations, handoffs, cost per conversation")
    add_common(p, db=True)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("eval", help="score answers on a question set: resolved, correct, wrong, handoffs")
    p.add_argument(
        "--questions",
        required=True,
        metavar="FILE",
        help="JSONL: question, doc_ids, answer_contains (regexes), in_scope, turns?, split?",
    )
    p.add_argument("--limit", type=int, help="only the first N questions (after --split)")
    p.add_argument("--split", choices=["dev", "heldout", "all"], default="all", help="which questions (default all)")
    p.add_argument("--out", metavar="REPORT.md", help="Markdown report (default .chatbot/eval/NAME.md)")
    add_common(p, index=True, db=True)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "calibrate",
        help="train the answer / hand-over decision on the index and choose its "
        "threshold on a question set's dev split",
    )
    p.add_argument("--questions", required=True, metavar="FILE", help="JSONL question set, as for eval")
    p.add_argument(
        "--split",
        choices=["dev", "all"],
        default="dev",
        help="questions to choose the threshold on (default dev; keep the held-out split for reporting)",
    )
    p.add_argument(
        "--target-precision",
        type=float,
        default=None,
        help="share of answered questions that must be correct (default [grounding] target_precision, 0.9)",
    )
    add_common(p, index=True)
    p.set_defaults(func=cmd_calibrate)


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
