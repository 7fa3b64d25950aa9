"""One round of the improvement loop: fine-tune, export, evaluate, promote (`chatbot improve`).

1. Training chats: grounded chats from the help centre in the index (`finetune.grounded`: its own
   titles, headings and FAQ questions, the passages the engine really retrieves, short replies that
   quote the answering sentences and cite [n]) plus a share of the support logs (scrubbed, in the
   serve-time prompt among other replies, `finetune.train.exchange_chats`).
2. LoRA on `[models] llm` (`finetune.train.train_chats`), merged into `OUT/candidate/`.
3. CTranslate2 export (`[finetune.improve] quantization`, int8) into `OUT/candidate-int8/`, named
   in its `chatbot_model.json`.
4. The gate: `chatbot eval` (`chatbot.reporting.evaluation`) on the `[finetune.improve] split` of the
   question set (dev; the held-out split is never used here) with the serving model and with the
   candidate, each through the whole engine, and again with the LLM writing every answer it can
   (`[grounding] trained_decision` off: the calibrated engine may call it for no question at all, and
   then the first evaluation cannot tell models apart). The candidate is promoted only if, in both,
   its correct rate is not lower and its wrong rate not higher than the serving model's.
   With `[finetune.improve] distill_layers`, a student cut from the fine-tuned model is distilled from
   it on the same chats (`finetune.distill.distill_chats`), exported into `OUT/student-int8/` and
   evaluated the same way. It is promoted instead of its teacher when it passes the gate and, where
   the LLM writes, it is no worse than the teacher either: faster, and as good.
   With `[finetune.improve] independent_questions` (a set written by other people, never tuned on),
   the chosen model and the serving model also answer all of its questions; the figures are reported
   beside the gate's, and a model worse there is not promoted.
5. Promotion copies the export into `[models] promoted_dir` (default `OUT/serving/`) with
   `promotion.json`; the builder serves it from then on (see `chatbot.builder.promoted_model`). The
   serving model's dev totals are recorded in the database, for `chatbot report` and the panel.

Every step is cached under OUT by a fingerprint of what it depends on (the chats and settings; an
evaluation by model, questions, documents, engine settings and the engine's code), so a second run
with nothing changed loads results instead of training or answering again. The evaluations and the
gate's comparison are in `finetune.improve_gate`. This module knows nothing about the command line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from core.config import Config
from core.errors import BadInput
from core.files import build_folder_atomic, write_atomic
from chatbot.answer.export import export_ctranslate2
from chatbot.builder import MODEL_CARD, build_index, build_searcher, promoted_model
from finetune.copilot_eval import copilot_gate, copilot_scores
from finetune.data import prepare_dataset, read_exchanges
from finetune.evaluate import install_model
from finetune.grounded import GroundedOptions, grounded_chats, split_chats
from finetune.improve_gate import GateSet, digest_of, evaluate_model, gate, gate_set, model_card, rates, verdict
from finetune.improve_gate import independent_check, independent_set, writes_evaluator
from finetune.prompts import SourcePool
from finetune.train import Chat, FinetuneOptions, exchange_chats, train_chats

Progress = Callable[[str], None]


def _chats_digest(chats: Sequence[Chat]) -> str:
    digest = hashlib.sha1()
    for chat in chats:
        digest.update(json.dumps([[m.role, m.content] for m in chat.messages] + [chat.reply]).encode())
    return digest.hexdigest()


def training_chats(
    config: Config, index, logs: Sequence[str], out: Path, progress: Progress
) -> tuple[list[Chat], list[Chat], dict]:
    """(train, validation, counts): grounded help-centre chats from the loaded `index` plus a share of the
    support logs."""
    imp = config.finetune.improve
    options = GroundedOptions(
        config.company_name,
        config.retrieval.k,
        config.generation.source_sentences,
        imp.max_chats,
        config.finetune.seed,
        imp.reply_words,
        imp.decline_every,
    )
    finetune_options = FinetuneOptions.from_config(config)
    if logs:  # read first: a missing or bad log file fails before the help centre is searched
        splits, data_report = prepare_dataset(logs, out / "data", finetune_options.data)
    chats, counts = grounded_chats(index, build_searcher(config, index), options, progress)
    if logs:
        exchanges = list(splits.train)[: int(len(chats) * imp.log_share)]
        chats += exchange_chats(exchanges, SourcePool(list(splits.train)), finetune_options.encode)
        counts.update(log_chats=len(exchanges), logs=data_report.to_json())
    train, validation = split_chats(chats, min(imp.validation_chats, len(chats) // 5), config.finetune.seed)
    progress(
        f"{len(train)} training chats ({counts['chats']} from the help centre, {counts.get('log_chats', 0)} "
        f"from support logs), {len(validation)} held out for the loss"
    )
    return train, validation, counts


def _trained(folder: Path, fingerprint: str) -> bool:
    report = folder / "train_report.json"
    return report.is_file() and json.loads(report.read_text(encoding="utf-8")).get("fingerprint") == fingerprint


def train_candidate(
    config: Config, train: list[Chat], validation: list[Chat], counts: dict, out: Path, progress: Progress
) -> tuple[Path, str]:
    """The merged fine-tuned model folder (trained now, or cached) and its fingerprint."""
    options = FinetuneOptions.from_config(config)
    options = replace(options, loop=replace(options.loop, max_steps=config.finetune.improve.max_steps))
    fingerprint = digest_of(config.models.llm, _chats_digest(train), options.lora, options.loop, options.encode)
    folder = out / "candidate"
    if _trained(folder, fingerprint):
        progress(f"fine-tuned model in {folder} is up to date")
        return folder, fingerprint

    def train_into(tmp: Path) -> None:
        train_chats(
            train,
            validation,
            tmp,
            options,
            progress=progress,
            extra_report={"fingerprint": fingerprint, "chats": counts},
        )

    build_folder_atomic(folder, train_into)
    return folder, fingerprint


def distill_candidate(
    config: Config,
    teacher: Path,
    teacher_fingerprint: str,
    train: list[Chat],
    validation: list[Chat],
    out: Path,
    progress: Progress,
) -> tuple[Path, str]:
    """The student distilled from the fine-tuned `teacher` (now, or cached) and its fingerprint."""
    from finetune.distill import DistillOptions, distill_chats

    imp = config.finetune.improve
    options = DistillOptions.from_config(config)
    options = replace(options, layers=imp.distill_layers, loop=replace(options.loop, max_steps=imp.max_steps))
    fingerprint = digest_of(
        teacher_fingerprint,
        _chats_digest(train),
        options.layers,
        options.temperature,
        options.alpha,
        options.loop,
        options.encode,
    )
    folder = out / "student"
    report = folder / "distill_report.json"
    if report.is_file() and json.loads(report.read_text(encoding="utf-8")).get("fingerprint") == fingerprint:
        progress(f"distilled student in {folder} is up to date")
        return folder, fingerprint
    build_folder_atomic(
        folder,
        lambda tmp: distill_chats(
            teacher, train, validation, tmp, options, progress, extra_report={"fingerprint": fingerprint}
        ),
    )
    return folder, fingerprint


def export_candidate(
    config: Config, model: Path, fingerprint: str, out: Path, progress: Progress, kind: str = "candidate"
) -> tuple[Path, str]:
    """The serving export of `model` (made now, or cached) and its name; `kind`: "candidate" or "student"."""
    quantization = config.finetune.improve.quantization
    folder = out / f"{kind}-{quantization}"
    layers = f"-student{config.finetune.improve.distill_layers}" if kind == "student" else ""
    name = f"{config.models.llm}-grounded-{fingerprint[:8]}{layers}-{quantization}"
    if model_card(folder).get("fingerprint") == fingerprint:
        progress(f"{quantization} export in {folder} is up to date")
        return folder, name
    progress(f"exporting {model} to CTranslate2 {quantization}")
    export_ctranslate2(model, folder, quantization, force=True)
    write_atomic(
        folder / MODEL_CARD,
        json.dumps({"name": name, "base": config.models.llm, "fingerprint": fingerprint}, indent=2) + "\n",
    )
    return folder, name


def _distill_student(
    config: Config,
    model: Path,
    fingerprint: str,
    train: list[Chat],
    validation: list[Chat],
    out: Path,
    progress: Progress,
) -> dict | None:
    """The distilled student's export (made now, or cached) when `[finetune.improve] distill_layers` asks for one."""
    if config.finetune.improve.distill_layers <= 0:
        return None
    student_model, student_fingerprint = distill_candidate(config, model, fingerprint, train, validation, out, progress)
    student_export, student_name = export_candidate(
        config, student_model, student_fingerprint, out, progress, kind="student"
    )
    return {
        "name": student_name,
        "folder": str(student_export),
        "fingerprint": student_fingerprint,
        "layers": config.finetune.improve.distill_layers,
    }


def _judge_student(
    config: Config,
    student: dict,
    gate_questions: GateSet,
    serving: dict,
    serving_writes: dict,
    teacher_writes: dict,
    writes: Callable[[str, str], dict],
    out: Path,
    progress: Progress,
) -> tuple[dict, dict]:
    """Put the student through the gate and against its teacher, noting the verdict in `student`; returns its
    totals and its totals where the LLM writes."""
    totals = evaluate_model(config, student["folder"], student["name"], gate_questions, out, progress)["totals"]
    student_writes = writes(student["folder"], student["name"])
    passes, why = verdict(totals, serving, student_writes, serving_writes)
    as_good, versus_teacher = gate(student_writes, teacher_writes)
    student.update(
        totals=totals,
        **rates(totals),
        writing=rates(student_writes),
        teacher_writing=rates(teacher_writes),
        eligible=passes and as_good,
        reason=f"student: {why}; where the LLM writes, against its teacher {versus_teacher}",
    )
    return totals, student_writes


def _install_and_log(config: Config, record: dict, export: Path, target: Path, now_serving: tuple[str, dict]) -> None:
    """Install the export into `target` when it was promoted, and log the serving model's totals in the database."""
    if record["promoted"]:
        install_model(
            str(export),
            target,
            {
                key: record[key]
                for key in (
                    "name",
                    "base",
                    "fingerprint",
                    "reason",
                    "split",
                    "questions",
                    "candidate",
                    "serving_before",
                )
            },
        )
    from chatbot.records.store import Store

    Store(config.db_url).stats.add_eval_run(now_serving[0], record["questions"], record["split"], now_serving[1])


def _summary(
    record: dict,
    export: Path,
    target: Path,
    now_serving: str,
    counts: dict,
    student: dict | None,
    candidate_writes: dict | None,
    serving_writes: dict | None,
) -> dict:
    """What `improve` returns (and `chatbot improve --json` prints): rates rather than whole totals."""
    serving = record["serving_before"]
    return {
        "serving": now_serving,
        "promoted": record["promoted"],
        "reason": record["reason"],
        "target": str(target),
        "candidate": {
            "name": record["name"],
            "folder": str(export),
            **rates(record["candidate"]),
            **({"writing": rates(candidate_writes)} if candidate_writes else {}),
        },
        "serving_before": {
            "name": serving["name"],
            **rates(serving),
            **({"writing": rates(serving_writes)} if serving_writes else {}),
        },
        **({"independent": record["independent"]} if "independent" in record else {}),
        "chats": counts,
        "copilot": _copilot_summary(record.get("copilot")),
        "levers": record.get("levers", {}),
        **({"student": {k: v for k, v in student.items() if k not in ("totals", "fingerprint")}} if student else {}),
        "train": {
            k: record["train_report"].get(k)
            for k in ("steps", "train_seconds", "seconds_per_step", "validation_loss_before", "validation_loss_after")
        },
    }


def _copilot(
    config: Config,
    index,
    logs: Sequence[str],
    out: Path,
    serving: tuple[str, str],
    candidate: tuple[str, str],
    progress,
) -> dict | None:
    """The copilot evaluation (`finetune.copilot_eval`) of the serving and the candidate model on the held-out
    support logs, and whether the candidate should draft for people; None without logs."""
    held_out = out / "data" / "test.jsonl"
    if not logs or not held_out.is_file():
        return None
    exchanges = read_exchanges(held_out)[: config.finetune.improve.copilot_exchanges]
    if not exchanges:
        return None
    before = copilot_scores(config, index, serving[0], serving[1], exchanges, out, progress)
    after = copilot_scores(config, index, candidate[0], candidate[1], exchanges, out, progress)
    better, reason = copilot_gate(after, before)
    return {
        "serving": before,
        "candidate": after,
        "promoted": better,
        "reason": reason,
        # people get the candidate's drafts with this in the config (customers keep the model the gate chose)
        **({"config": f'[handoff] copilot_model = "{candidate[0]}"'} if better else {}),
    }


def _copilot_summary(copilot: dict | None) -> dict | None:
    """The copilot evaluation without its example drafts (they are in OUT/improve.json's record)."""
    if copilot is None:
        return None
    strip = lambda figures: {k: v for k, v in figures.items() if k != "examples"}  # noqa: E731
    return {**copilot, "serving": strip(copilot["serving"]), "candidate": strip(copilot["candidate"])}


def _levers(config: Config, train: list[Chat], out: Path, progress: Progress) -> dict:
    """LoRA against full fine-tuning on this round's data (`finetune.levers`), when `measure_levers` is on."""
    if not config.finetune.improve.measure_levers:
        return {}
    from finetune.levers import lora_vs_full

    return {"lora_vs_full": lora_vs_full(FinetuneOptions.from_config(config), train, out, progress)}


def _ready_index(config: Config):
    """The loaded index of the help centre, refusing a round that cannot run: a remote LLM, or an empty index."""
    if config.models.llm_backend == "openai":
        raise BadInput("'chatbot improve' fine-tunes a local model; [models] llm_backend is 'openai'")
    index = build_index(config).load()
    if not index.chunks:
        raise BadInput(f"the index {config.index_dir} is empty; run 'chatbot ingest' on your help centre first")
    return index


def _practice(config: Config, index, progress: Progress) -> dict | None:
    """With `[practice] enabled`, the help centre's practice questions brought up to date (new or changed
    sections only) before the round; the next ingest or calibration trains on them where configured."""
    if not config.practice.enabled:
        return None
    from chatbot.practice import ensure_practice

    return ensure_practice(config, index, progress)


def _serving_model(config: Config, target: Path) -> tuple[str, str, str | None]:
    """(model, name, fingerprint) of what serves now: the model promoted into `target`, else `[models] llm`
    (whose fingerprint is None)."""
    current = promoted_model(config.models.llm, str(target))
    if not current:
        return config.models.llm, config.models.llm, None
    return current[0], current[1], model_card(Path(current[0])).get("fingerprint")


def _check_independent(
    config: Config,
    independent: GateSet | None,
    record: dict,
    export: str,
    serving: tuple[str, str],
    out: Path,
    progress: Progress,
) -> None:
    """With independent questions, the chosen model (`record`'s) and the serving model answer them too: their
    figures go into `record` beside the gate's, and a model worse there is not promoted."""
    if independent is None:
        return
    check = independent_check(config, independent, (export, record["name"]), serving, out, progress)
    record.update(
        independent=check,
        promoted=record["promoted"] and check["passes"],
        reason=f"{record['reason']}; {check['reason']}",
    )


def improve(
    config: Config, questions_path: str, logs: Sequence[str], out_dir: str | Path, progress: Progress = lambda m: None
) -> dict:
    """Run the loop once; returns what each step did and the gate's decision (also in OUT/improve.json)."""
    index = _ready_index(config)
    # a bad question file fails before any training
    gate_questions, independent = gate_set(config, questions_path, index), independent_set(config, index)
    practice = _practice(config, index, progress)
    out, target = Path(out_dir), Path(config.models.promoted_dir or Path(out_dir) / "serving")
    train, validation, counts = training_chats(config, index, logs, out, progress)
    model, fingerprint = train_candidate(config, train, validation, counts, out, progress)
    levers = _levers(config, train, out, progress)
    export, name = export_candidate(config, model, fingerprint, out, progress)
    student = _distill_student(config, model, fingerprint, train, validation, out, progress)
    serving_model, serving_name, serving_fingerprint = _serving_model(config, target)
    serving = evaluate_model(config, serving_model, serving_name, gate_questions, out, progress)["totals"]
    writes = writes_evaluator(config, questions_path, index, out, progress)
    serving_writes = teacher_writes = candidate_writes = None
    if student and serving_fingerprint == student["fingerprint"]:
        promoted, reason, candidate = False, "the distilled student is already the serving model", serving
        export, name, fingerprint = Path(student["folder"]), student["name"], student["fingerprint"]
    else:
        serving_writes = writes(serving_model, serving_name)
        if serving_fingerprint == fingerprint:
            promoted, reason, candidate = False, "the candidate is already the serving model", serving
            teacher_writes = serving_writes
        else:
            candidate = evaluate_model(config, str(export), name, gate_questions, out, progress)["totals"]
            teacher_writes = writes(str(export), name)
            promoted, reason = verdict(candidate, serving, teacher_writes, serving_writes)
            candidate_writes = teacher_writes
        if student:  # judged also when its teacher already serves: it is there to replace it
            totals, student_writes = _judge_student(
                config, student, gate_questions, serving, serving_writes, teacher_writes, writes, out, progress
            )
            if student["eligible"]:  # the student serves in its teacher's place
                promoted, reason, candidate, candidate_writes = True, student["reason"], totals, student_writes
                export, name, fingerprint = Path(student["folder"]), student["name"], student["fingerprint"]
    copilot = _copilot(config, index, logs, out, (serving_model, serving_name), (str(export), name), progress)
    record = {
        "copilot": copilot,
        "levers": levers,
        **({"practice": practice} if practice is not None else {}),
        "name": name,
        "base": config.models.llm,
        "fingerprint": fingerprint,
        "promoted": promoted,
        "reason": reason,
        "split": config.finetune.improve.split,
        "questions": str(questions_path),
        "candidate": candidate,
        "serving_before": {"name": serving_name, **serving},
        "train_report": json.loads((model / "train_report.json").read_text(encoding="utf-8")),
    }
    _check_independent(config, independent, record, str(export), (serving_model, serving_name), out, progress)
    now_serving = (name, candidate) if record["promoted"] else (serving_name, serving)
    _install_and_log(config, record, export, target, now_serving)
    summary = _summary(record, export, target, now_serving[0], counts, student, candidate_writes, serving_writes)
    write_atomic(out / "improve.json", json.dumps({**summary, "record": record}, indent=2, default=str) + "\n")
    return summary
