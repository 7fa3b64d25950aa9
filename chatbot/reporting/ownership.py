"""What it really costs to own the assistant, from measured figures, per resolved conversation, beside the
market's prices; and a planner for a monthly volume.

The bill of the period (from the first record to now):
- serving: the hours each server was up (`chatbot serve` records its start, a heartbeat and its stop)
  x `[prices] hardware_usd_per_hour` of its device: the machine is paid whether customers write or not.
  The per-turn meter stays as the marginal cost;
- model work: the wall seconds of every ingest, calibration, evaluation, fine-tuning, distillation and
  improvement run (`chatbot.work_meter`), priced per hour of its device, charged to the period it ran
  in; `amortised` also spreads each kind's runs over the conversations served while its result served
  (from the run to the next run of that kind, or now);
- storage: the bytes of the model cache, the index, the database file and the uploads, measured now,
  x `storage_usd_per_gb_month` for the period;
- people: the measured handling time of live handoffs (`chatbot.handoff`), as priced there;
- data: runs of kind "data" (preparing support logs: redaction), as model work is priced.
Resolved conversations are counted as the panel counts them (`chatbot.reporting.resolution`). The same
conversations are priced on the API model (its shadow price plus people for the handoffs), at the
vendor's price per resolution (plus people for the handoffs) and by people alone.

The planner projects a month of N conversations from the measured rates: compute seconds and people's
cost per conversation, the shares resolved and handed over. A CPU machine serves at most
`UTILISATION` of its hours; a GPU figure comes from a recorded `bench` run, else it is marked an
estimate. It does not know the company's peak hours, discounts, or what its people's time is worth
beyond `[prices]`.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chatbot.records.costs import PriceSheet
from chatbot.records.ownership_records import WorkRun
from chatbot.records.store import Store
from chatbot.reporting.resolution import resolution

HOURS_PER_MONTH = 730.0
UTILISATION = 0.5  # share of a machine's hours it can spend on turns (customers do not arrive evenly)
PLANNER_VOLUMES = (100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000)  # conversations a month, charted
GPU_SPEEDUP_ESTIMATE = 10.0  # CPU seconds per turn / GPU seconds, when no GPU benchmark was recorded


def stored_paths(config) -> list[str]:
    """What an installation keeps on disk under `config`: the model cache, the index, the database file (SQLite),
    uploads, help-centre answers and promoted models."""
    from core.config import cache_dir

    db = config.db_url.removeprefix("sqlite:///") if config.db_url.startswith("sqlite:///") else ""
    paths = [str(cache_dir()), config.index_dir, db, config.server.uploads_dir, config.handoff.faq_dir]
    return [p for p in (*paths, config.models.promoted_dir) if p]


def folder_bytes(paths: Iterable[str | Path]) -> int:
    """Bytes of the files under each path (a file counts itself; a missing path nothing)."""
    total = 0
    for path in {Path(p).expanduser() for p in paths if p}:
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            for folder, _, files in os.walk(path):
                total += sum((Path(folder) / f).stat().st_size for f in files if (Path(folder) / f).is_file())
    return total


def _clip(start: datetime, end: datetime, since: datetime, until: datetime) -> float:
    """Seconds of [start, end] within [since, until]."""
    return max(0.0, (min(end, until) - max(start, since)).total_seconds())


def ownership(
    store: Store,
    prices: PriceSheet,
    stored: Iterable[str | Path] = (),
    window_h: float = 24.0,
    now: datetime | None = None,
    resolved: int | None = None,
) -> dict:
    """The module's bill for the period from the first record to `now`, per resolved conversation and beside
    the API, the vendor and people; `stored`: the paths whose bytes are stored (models, index, db, uploads);
    `resolved`: the resolved conversations when the caller counted them already (else counted here)."""
    now = now or datetime.now(UTC)
    servers, work = store.ownership.server_runs(), store.ownership.work_runs()
    t = store.stats.totals()
    starts = store.stats.conversation_starts()
    firsts = [s.started_at for s in servers] + [w.started_at for w in work] + starts[:1]
    since = min(firsts, default=now)
    period_days = max((now - since).total_seconds() / 86400.0, 1 / 24)  # an hour at least
    serving = sum(prices.machine_usd(s.device, _clip(s.started_at, s.ended_at, since, now)) for s in servers)
    model_work = sum(prices.machine_usd(w.device, w.wall_s) for w in work if w.kind != "data")
    data = sum(prices.machine_usd(w.device, w.wall_s) for w in work if w.kind == "data")
    gigabytes = folder_bytes(stored) / 1e9
    storage = gigabytes * prices.storage_usd_per_gb_month * period_days / 30.0
    people = store.live.totals()["human_cost_usd"]
    total = serving + model_work + storage + people + data
    resolved = resolution(store.stats, window_h, now)["resolved"] if resolved is None else resolved
    n, handed_over = t["conversations"], t["handed_over"]
    human = prices.human_agent_usd_per_conversation

    def per_resolved(usd: float) -> float | None:
        return usd / resolved if resolved else None

    drivers = {"serving": serving, "model_work": model_work, "storage": storage, "people": people, "data": data}
    return {
        "period_days": round(period_days, 4),
        **{f"{k}_usd": v for k, v in drivers.items()},
        "total_usd": total,
        "shares": {k: (v / total if total else None) for k, v in drivers.items()},
        "resolved": resolved,
        "conversations": n,
        "stored_gb": round(gigabytes, 4),
        "server_hours": round(sum(_clip(s.started_at, s.ended_at, since, now) for s in servers) / 3600, 4),
        "work_runs": len(work),
        "per_resolved_usd": per_resolved(total),
        "marginal_per_conversation_usd": t["cost_usd"] / n if n else None,  # the per-turn meter
        "vendor_per_resolved_usd": per_resolved(resolved * prices.vendor_usd_per_resolution + people),
        "api_per_resolved_usd": per_resolved(t["api_shadow_cost_usd"] + handed_over * human),
        "human_per_resolved_usd": per_resolved(n * human),
        "levers": levers(store, prices, work),
        "amortised": amortised(work, starts, prices, now),
    }


AMORTISED_KINDS = ("ingest", "calibrate", "improve", "finetune", "distill", "practice")  # runs whose result serves


def amortised(work: Sequence[WorkRun], starts: Sequence[datetime], prices: PriceSheet, now: datetime) -> dict:
    """Per kind of model work: its runs' cost, the conversations started while each run's result served (until
    the next run of that kind, or `now`), and the cost per such conversation (None before any was served).
    `starts`: when each conversation started, oldest first (`Stats.conversation_starts`)."""
    out = {}
    for kind in AMORTISED_KINDS:
        runs = sorted((w for w in work if w.kind == kind), key=lambda w: w.started_at)
        if not runs:
            continue
        ends = [r.started_at for r in runs[1:]] + [now]
        served = [bisect_left(starts, end) - bisect_left(starts, run.started_at) for run, end in zip(runs, ends)]
        costs = [prices.machine_usd(run.device, run.wall_s) for run in runs]
        out[kind] = {
            "runs": len(runs),
            "usd": sum(costs),
            "conversations": sum(served),  # each conversation counts once: under the run whose result served it
            "usd_per_conversation": sum(costs) / sum(served) if sum(served) else None,
            "latest_usd_per_conversation": costs[-1] / served[-1] if served[-1] else None,
        }
    return out


def ownership_daily(
    store: Store, prices: PriceSheet, stored_gb: float = 0.0, days: int = 30, now: datetime | None = None
) -> list[dict]:
    """The bill's drivers per day of the last `days` (UTC days, oldest first): {"date", "driver", "usd"} rows
    for a stacked chart; storage at `stored_gb` (today's, as the bill measured it) every day."""
    now = now or datetime.now(UTC)
    first_day = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    storage_per_day = stored_gb * prices.storage_usd_per_gb_month / 30.0
    servers, work = store.ownership.server_runs(), store.ownership.work_runs()
    people = [(at, usd) for _, at, _, usd in store.live.resolved()]
    rows = []
    for offset in range(days):
        start = first_day + timedelta(days=offset)
        end = min(start + timedelta(days=1), now)
        on_day = {
            "serving": sum(prices.machine_usd(s.device, _clip(s.started_at, s.ended_at, start, end)) for s in servers),
            "model work": sum(prices.machine_usd(w.device, w.wall_s) for w in work if start <= w.started_at < end),
            "storage": storage_per_day * (end - start).total_seconds() / 86400,
            "people": sum(usd for at, usd in people if start <= at < end),
        }
        rows += [{"date": start.date().isoformat(), "driver": k, "usd": v} for k, v in on_day.items()]
    return rows


def planner_lines(store: Store, prices: PriceSheet, volumes: Iterable[int] = PLANNER_VOLUMES) -> list[dict]:
    """The planner at each volume: {"conversations", "log10_conversations", "option", "usd" (a month),
    "usd_per_resolved"} rows, one per option."""
    rows, rates = [], measured_rates(store, prices)  # read once, projected to every volume
    for n in volumes:
        planned = plan(store, prices, n, rates=rates)
        for option, usd in planned["monthly_usd"].items():
            each = planned["per_resolved_usd"][option]
            rows.append(
                {
                    "conversations": n,
                    "log10_conversations": math.log10(n),
                    "option": option,
                    "usd": usd,
                    "usd_per_resolved": each,
                }
            )
    return rows


def levers(store: Store, prices: PriceSheet, work: Sequence[WorkRun] | None = None) -> dict:
    """What each lever saved, where it was measured (None where it was not, never assumed); `work`: the
    recorded runs of model work, when the caller read them already."""
    quoted, written, llm_s = store.stats.generation_split()
    per_written = llm_s / written if written else None
    avoided_s = quoted * per_written if per_written is not None else None
    work = store.ownership.work_runs() if work is None else work
    benches = [w.detail for w in work if w.kind == "bench" and w.detail.get("llm")]
    llm = benches[-1]["llm"] if benches else None
    return {
        "evidence_first": {
            "quoted_turns": quoted,
            "llm_turns": written,
            "llm_s_per_written_turn": per_written,
            "llm_s_avoided": avoided_s,
            "usd_avoided": prices.machine_usd("cpu", avoided_s) if avoided_s is not None else None,
        },
        "int8_vs_fp32": (
            {"speedup": llm["tokens_per_s"] / llm["baseline_tokens_per_s"], "measured": True}
            if llm and llm.get("baseline_tokens_per_s")
            else {"speedup": None, "measured": False}
        ),
        "student_vs_teacher": {"measured": False},  # `chatbot improve` reports it per round; not priced yet
        "lora_vs_full": _latest_detail(work, "improve", "lora_vs_full") or {"measured": False},
    }


def _latest_detail(work: Sequence[WorkRun], kind: str, key: str) -> dict | None:
    """`key` of the latest recorded `kind` run that measured it (`chatbot improve` measures LoRA once)."""
    found = [w.detail[key] for w in work if w.kind == kind and w.detail.get(key)]
    return found[-1] if found else None


def measured_rates(store: Store, prices: PriceSheet, window_h: float = 24.0) -> dict:
    """What the planner projects from, read once: compute seconds, shares handed over and resolved, people's
    cost per handoff, GPU seconds, a month of model work, the API shadow price, per conversation."""
    t = store.stats.totals()
    n = max(t["conversations"], 1)
    compute_s = sum(t["turn_seconds"]) / n  # measured seconds of compute per conversation
    live = store.live.totals()
    counted = resolution(store.stats, window_h)
    gpu_s, gpu_measured = _gpu_seconds(store, compute_s)
    return {
        "compute_s_per_conversation": compute_s,
        "handoff_share": t["handed_over"] / n,
        # answered or suggested less than the window ago, the customer silent since, count as they stand
        "resolved_share": (counted["resolved"] + counted["pending"]) / n,
        "pending_counted": counted["pending"],
        "person_usd_per_handoff": (
            live["human_cost_usd"] / live["handled"] if live["handled"] else prices.human_agent_usd_per_conversation
        ),
        "gpu_s_per_conversation": gpu_s,
        "gpu_measured": gpu_measured,
        "measured_conversations": t["conversations"],
        "api_usd_per_conversation": t["api_shadow_cost_usd"] / n,
        "model_work_usd_per_month": _monthly_other(store, prices),
    }


def plan(
    store: Store, prices: PriceSheet, conversations_per_month: int, window_h: float = 24.0, rates: dict | None = None
) -> dict:
    """The monthly bill of `conversations_per_month` on this machine, one GPU, the API model, the vendor
    and people alone, from the measured rates (`rates`: `measured_rates`, read now when not given); with
    the break-even volumes against the vendor, the API and people."""
    r = rates or measured_rates(store, prices, window_h)
    n, handoff_share, resolved_share = conversations_per_month, r["handoff_share"], r["resolved_share"]
    person, fixed_other = r["person_usd_per_handoff"], r["model_work_usd_per_month"]
    people = n * handoff_share * person
    cpu_hour = prices.hourly("cpu")
    rows = {
        "this_machine": _machines(n, r["compute_s_per_conversation"], cpu_hour) + fixed_other + people,
        "one_gpu": _machines(n, r["gpu_s_per_conversation"], prices.hourly("cuda")) + fixed_other + people,
        "api_model": n * r["api_usd_per_conversation"] + people,
        "vendor": n * resolved_share * prices.vendor_usd_per_resolution + people,
        "people_only": n * prices.human_agent_usd_per_conversation,
    }
    fixed = _machines(1, r["compute_s_per_conversation"], cpu_hour) + fixed_other  # one machine, whatever the volume
    return {
        "conversations_per_month": n,
        "rates": r,
        "monthly_usd": rows,
        "per_resolved_usd": {k: (v / (n * resolved_share) if resolved_share and n else None) for k, v in rows.items()},
        "break_even_conversations": {
            "vendor": _break_even(fixed, resolved_share * prices.vendor_usd_per_resolution),
            "api_model": _break_even(fixed, r["api_usd_per_conversation"]),
            "people_only": _break_even(fixed, prices.human_agent_usd_per_conversation - handoff_share * person),
        },
    }


def _machines(conversations: int, seconds_each: float, usd_per_hour: float) -> float:
    """A month of the machines `conversations` need at `UTILISATION` (one at least)."""
    needed = max(1, math.ceil(conversations * seconds_each / (HOURS_PER_MONTH * 3600 * UTILISATION)))
    return needed * HOURS_PER_MONTH * usd_per_hour


def _monthly_other(store: Store, prices: PriceSheet) -> float:
    """Model work per month at the measured pace (its total over the records' span, at least a month)."""
    work = store.ownership.work_runs()
    if not work:
        return 0.0
    span_days = max((datetime.now(UTC) - min(w.started_at for w in work)).total_seconds() / 86400, 30.0)
    total = sum(prices.machine_usd(w.device, w.wall_s) for w in work)
    return total * 30.0 / span_days


def _gpu_seconds(store: Store, cpu_seconds: float) -> tuple[float, bool]:
    """GPU seconds per conversation from a recorded GPU `bench` run's speed-up, else an estimate."""
    for w in reversed(store.ownership.work_runs()):
        speedup = (w.detail.get("turn") or {}).get("gpu_speedup") if w.kind == "bench" else None
        if speedup:
            return cpu_seconds / float(speedup), True
    return cpu_seconds / GPU_SPEEDUP_ESTIMATE, False


def _break_even(fixed_usd: float, saved_per_conversation_usd: float) -> int | None:
    """The monthly volume above which a fixed bill beats paying `saved_per_conversation_usd` each; None: never."""
    if saved_per_conversation_usd <= 0:
        return None
    return math.ceil(fixed_usd / saved_per_conversation_usd)
