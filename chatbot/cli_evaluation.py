"""The `chatbot` commands that measure: `report` (totals of the served conversations), `eval` (scores
on a question set) and `calibrate` (the answer decision's threshold chosen on one).

`chatbot.cli` calls `register(subparsers)` after its own answer commands, as it calls the plug-ins';
the commands here are re-exported there. Knows nothing about how answers are made or scored: it
turns flags into calls of the builder, `chatbot.reporting` and the store, and prints what they return.
"""

from __future__ import annotations

import argparse
import json

from chatbot.cli_common import add_common, config_from_args, progress
from core.errors import BadInput, ChatbotError


def cmd_report(args: argparse.Namespace) -> int:
    from chatbot.builder import build_prices, serving_model_name
    from chatbot.reporting.ownership import stored_paths
    from chatbot.reporting.report import build_report
    from chatbot.records.store import Store

    config = config_from_args(args)
    report = build_report(
        Store(config.db_url),
        build_prices(config),
        serving_model_name(config),
        config.analytics.resolution_window_h,
        stored=stored_paths(config),
    )
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
        r, offered = report["resolution"], report["suggestions"]
        print(
            f"resolved {r['resolved']} ({r['confirmed']} confirmed, {r['assumed']} assumed after {r['window_h']:g} h "
            f"quiet), {r['handed_over']} handed over, {r['unresolved']} unresolved, {r['pending']} within the window; "
            f"suggestions {offered['offered']} ({offered['confirmed']} confirmed, {offered['declined']} declined)"
        )
        for name, a in report["actions"].items():
            print(
                f"action {name}: {a['runs']} runs {a['by_status']}, success "
                f"{'-' if a['success_rate'] is None else format(a['success_rate'], '.0%')}, p50 "
                f"{'-' if a['latency_p50_s'] is None else format(a['latency_p50_s'], '.2f') + ' s'}"
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
    from chatbot.work_meter import metered

    questions = select(load_questions(args.questions), args.split, args.limit)  # fail fast, before models load
    if args.workers < 1:
        raise BadInput(f"--workers must be 1 or more, not {args.workers}")
    name = Path(args.questions).stem + ("" if args.split == "all" else f"-{args.split}")
    production = config_from_args(args)  # where the run's totals are recorded, beside the serving figures
    if not args.db:  # keep evaluation conversations out of the production database
        args.db = f"sqlite:///{Path('.chatbot/eval') / (name + '.db')}"
        Path(".chatbot/eval").mkdir(parents=True, exist_ok=True)
    from chatbot.builder import build_pipeline

    pipeline = build_pipeline(config_from_args(args), progress)
    pipeline.warm_up()
    progress(f"evaluating {len(questions)} questions from {args.questions} ({args.split}) on {args.db}")
    with metered(production.db_url, "eval", pipeline.llm.device, {"questions": len(questions), "split": args.split}):
        report = evaluate(pipeline, questions, progress, args.workers)
    path = write_report(args.out or Path(".chatbot/eval") / f"{name}.md", report, args.questions, args.split)
    if not args.limit:  # a partial run is a smoke test, not a score
        from chatbot.records.store import Store

        Store(production.db_url).stats.add_eval_run(
            report["totals"]["model"], str(args.questions), args.split, report["totals"]
        )
    progress(f"report written to {path}")
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print("\n".join(totals_table(report["totals"])))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from chatbot.builder import build_index, calibrate_decision
    from chatbot.reporting.evaluation import load_questions, select
    from chatbot.work_meter import metered, work_device

    if args.target_precision is not None and not 0 < args.target_precision <= 1:
        raise ChatbotError("--target-precision must be above 0 and at most 1, e.g. 0.9")
    select(load_questions(args.questions), args.split)  # fail fast, before the index and models load
    config = config_from_args(args)
    index = build_index(config).load()
    with metered(config.db_url, "calibrate", work_device(config)):
        stored = calibrate_decision(config, index, args.questions, args.split, args.target_precision, progress)
    from chatbot.records.store import Store
    from chatbot.verbs import publish_version

    publish_version(Store(config.db_url), index)  # the servers on this folder and database load the new decision
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


def cmd_cost(args: argparse.Namespace) -> int:
    from chatbot.builder import build_prices
    from chatbot.records.store import Store
    from chatbot.reporting.ownership import plan

    if args.conversations_per_month < 1:
        raise ChatbotError("--conversations-per-month must be at least 1")
    config = config_from_args(args)
    planned = plan(
        Store(config.db_url), build_prices(config), args.conversations_per_month, config.analytics.resolution_window_h
    )
    if args.json:
        print(json.dumps(planned))
        return 0
    r = planned["rates"]
    print(
        f"{args.conversations_per_month} conversations a month, at the measured rates ({r['measured_conversations']} "
        f"conversations: {r['compute_s_per_conversation']:.2f} s of compute each, {r['resolved_share']:.0%} resolved, "
        f"{r['handoff_share']:.0%} handed over at ${r['person_usd_per_handoff']:.2f} a person each)"
    )
    for name, usd in planned["monthly_usd"].items():
        each = planned["per_resolved_usd"][name]
        estimate = " (GPU speed estimated)" if name == "one_gpu" and not r["gpu_measured"] else ""
        print(f"  {name:13s} ${usd:12,.2f} a month" + (f", ${each:.4f} per resolved" if each else "") + estimate)
    for name, volume in planned["break_even_conversations"].items():
        print(
            f"  this machine beats {name} above {volume:,} conversations a month" if volume else f"  never beats {name}"
        )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from chatbot.benchmarks import PARTS, run_bench, table
    from chatbot.work_meter import metered, work_device

    config = config_from_args(args)
    parts = [p.strip() for p in args.only.split(",")] if args.only else list(PARTS)
    if set(parts) - set(PARTS):  # before anything is recorded
        raise BadInput(f"--only takes parts from: {', '.join(PARTS)}; not {', '.join(sorted(set(parts) - set(PARTS)))}")
    with metered(config.db_url, "bench", work_device(config)) as run:
        results = run_bench(config, args.quick, parts, progress)
        run.update(results)  # the cost of ownership reads the levers from here
    if args.chart:
        from chatbot.benchmarks.chart import svg
        from core.files import write_atomic

        write_atomic(args.chart, svg(results))
    print(json.dumps(results) if args.json else table(results))
    return 0


def register(sub) -> None:
    """Add report, eval and calibrate: totals of the served conversations, scores on a question set."""
    p = sub.add_parser("report", help="totals: conversations, handoffs, cost per conversation")
    add_common(p, db=True)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("cost", help="plan a month: this machine, one GPU, the API, the vendor, people")
    p.add_argument("--conversations-per-month", type=int, required=True, metavar="N")
    add_common(p, db=True)
    p.set_defaults(func=cmd_cost)

    p = sub.add_parser("bench", help="each of our paths beside its baseline: llm, embed, ingest, retrieval, asr, turn")
    p.add_argument("--quick", action="store_true", help="every part sized to run in a few minutes (as CI runs it)")
    p.add_argument("--only", metavar="PARTS", help="comma-separated parts, e.g. llm,embed (default all)")
    p.add_argument("--chart", metavar="FILE.svg", help="also draw ours beside the baselines as an SVG chart")
    add_common(p, index=True, db=True)
    p.set_defaults(func=cmd_bench)

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
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="questions asked at once (default 1); the same figures sooner, latencies under that load",
    )
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
        help="share of answered questions that must be correct (default [grounding] target_precision, 0.95)",
    )
    add_common(p, index=True, db=True)  # --db: where the run's seconds are recorded
    p.set_defaults(func=cmd_calibrate)
