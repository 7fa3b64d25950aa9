"""The cost of ownership from stored seconds and bytes: the bill's sums by hand, the planner's break-even,
the server's clock and the work meter, and `chatbot cost`."""

import json
import math
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from chatbot.cli import main
from chatbot.records.costs import PriceSheet, Usage
from chatbot.records.outcomes import Outcome
from chatbot.records.schema import server_runs
from chatbot.records.store import Store
from chatbot.reporting.ownership import ownership, plan
from chatbot.work_meter import ServerClock, metered

PRICES = PriceSheet.from_table(
    {"cpu": 0.10, "cuda": 2.50}, 1.0, "gpt-4o-mini", {"gpt-4o-mini": [0.15, 0.60]}, 0.006, 4.0, 0.10, 0.99
)


def conversation(store: Store, outcome: Outcome) -> str:
    cid = store.conversations.new_conversation("cli")
    store.conversations.add_message(cid, "customer", "How long do refunds take?")
    used = Usage(retrieval_s=1.0, device="cpu")
    store.conversations.record_reply(cid, "Five days.", outcome, None, [], used, PRICES.price(used))
    return cid


@pytest.fixture
def store(tmp_path):
    """Ten hours of a CPU server, an hour of model work and half an hour of data work, two conversations
    answered and one handed over."""
    store = Store(f"sqlite:///{tmp_path}/db.sqlite")
    run = store.ownership.server_started("cpu", "test-host")
    store.ownership.server_seen(run, stopped=True)
    [recorded] = store.ownership.server_runs()
    with store.db.begin() as c:
        c.execute(update(server_runs).values(started_at=recorded.ended_at - timedelta(hours=10)))
    started = datetime.now(UTC) - timedelta(hours=5)
    store.ownership.record_work("improve", "cpu", started, 3600.0, 7000.0, {"promoted": False})
    store.ownership.record_work("data", "cpu", started, 1800.0, 1800.0, {})
    for outcome in (Outcome.ANSWERED, Outcome.ANSWERED, Outcome.NO_KNOWLEDGE):
        conversation(store, outcome)
    return store


def test_the_bill_adds_up_from_the_stored_seconds_and_bytes(store, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "blob.bin").write_bytes(b"x" * 2_000_000)
    now = datetime.now(UTC) + timedelta(days=2)  # the answers are past the 24 h window: assumed resolved
    bill = ownership(store, PRICES, [tmp_path / "models"], 24.0, now)
    assert bill["serving_usd"] == pytest.approx(10 * 0.10, rel=1e-3)  # 10 hours up x $0.10/h
    assert bill["model_work_usd"] == pytest.approx(0.10) and bill["data_usd"] == pytest.approx(0.05)
    assert bill["stored_gb"] == pytest.approx(0.002, abs=1e-4)
    assert bill["storage_usd"] == pytest.approx(0.002 * 0.10 * bill["period_days"] / 30, rel=1e-2)
    assert 2.0 < bill["period_days"] < 2.5  # from the server's start to `now`
    assert bill["people_usd"] == 0.0
    drivers = ("serving", "model_work", "storage", "people", "data")
    assert bill["total_usd"] == pytest.approx(sum(bill[f"{k}_usd"] for k in drivers))
    assert sum(bill["shares"].values()) == pytest.approx(1.0)
    assert bill["resolved"] == 2 and bill["per_resolved_usd"] == pytest.approx(bill["total_usd"] / 2)
    assert bill["vendor_per_resolved_usd"] == pytest.approx(0.99)  # 2 x $0.99 + no people, over 2
    assert bill["human_per_resolved_usd"] == pytest.approx(3 * 4.0 / 2)
    assert bill["api_per_resolved_usd"] == pytest.approx((0.0 + 1 * 4.0) / 2)  # no tokens; a person for the handoff
    assert bill["levers"]["evidence_first"]["quoted_turns"] == 2
    assert bill["levers"]["int8_vs_fp32"] == {"speedup": None, "measured": False}  # never assumed
    assert bill["levers"]["lora_vs_full"] == {"measured": False}  # the improve run measured none


def test_model_work_is_amortised_over_the_conversations_its_result_served(store, tmp_path):
    from chatbot.reporting.ownership import amortised

    now = datetime.now(UTC)
    store.ownership.record_work("improve", "cpu", now - timedelta(hours=1), 1800.0, 1800.0, {})  # a second round
    conversation(store, Outcome.ANSWERED)
    work, starts = store.ownership.work_runs(), store.stats.conversation_starts()
    spread = amortised(work, starts, PRICES, now + timedelta(hours=1))
    improve = spread["improve"]  # the fixture's 1-hour run 5 h ago, then this one: all 4 conversations came after
    assert improve["runs"] == 2 and improve["usd"] == pytest.approx(0.10 + 0.05)
    assert improve["conversations"] == 4  # each once, under the latest run before it started
    assert improve["usd_per_conversation"] == pytest.approx(0.15 / 4)
    assert improve["latest_usd_per_conversation"] == pytest.approx(0.05 / 4)
    early = amortised(work, starts, PRICES, now - timedelta(minutes=30))["improve"]  # before any conversation
    assert early["conversations"] == 0 and early["usd_per_conversation"] is None
    assert "ingest" not in spread  # no run of that kind


def test_the_lora_lever_is_the_latest_improve_run_that_measured_it(store, tmp_path):
    started = datetime.now(UTC)
    for speedup in (2.0, 3.5):
        lever = {"speedup": speedup, "trainable_share": 0.036, "measured": True}
        store.ownership.record_work("improve", "cpu", started, 60.0, 90.0, {"lora_vs_full": lever})
    store.ownership.record_work("improve", "cpu", started, 10.0, 10.0, {"promoted": False})  # a cached round
    lever = ownership(store, PRICES, [tmp_path], 24.0, datetime.now(UTC))["levers"]["lora_vs_full"]
    assert lever == {"speedup": 3.5, "trainable_share": 0.036, "measured": True}


def test_the_planner_projects_a_month_and_its_break_even_volumes(store):
    planned = plan(store, PRICES, 50_000)
    r = planned["rates"]
    assert r["handoff_share"] == pytest.approx(1 / 3) and r["resolved_share"] == pytest.approx(2 / 3)
    assert r["compute_s_per_conversation"] == pytest.approx(1.0)  # one second of retrieval each
    machine = 730 * 0.10  # one CPU machine serves 50,000 one-second conversations at half its hours
    work = 0.15  # an hour and a half of work at $0.10, within the first 30 days: a month's worth
    people = 50_000 * (1 / 3) * 4.0
    assert planned["monthly_usd"]["this_machine"] == pytest.approx(machine + work + people)
    assert planned["monthly_usd"]["vendor"] == pytest.approx(50_000 * (2 / 3) * 0.99 + people)
    assert planned["monthly_usd"]["people_only"] == pytest.approx(50_000 * 4.0)
    assert planned["break_even_conversations"]["vendor"] == math.ceil((machine + work) / ((2 / 3) * 0.99))
    assert planned["break_even_conversations"]["api_model"] is None  # no tokens were spent: the API costs nothing
    assert not r["gpu_measured"]


def test_the_server_clock_and_the_work_meter_record_what_they_measure(tmp_path):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    store = Store(url)
    clock = ServerClock(store, "cpu", every_s=0.05)
    clock.start()
    time.sleep(0.3)
    [beating] = store.ownership.server_runs()
    assert beating.running and beating.ended_at > beating.started_at  # heartbeats move its end
    clock.stop()
    [stopped] = store.ownership.server_runs()
    assert not stopped.running
    with pytest.raises(RuntimeError), metered(url, "ingest", "cpu", {"sources": 1}) as run:
        run["documents"] = 3
        sum(i * i for i in range(200_000))
        raise RuntimeError("the ingest failed")
    [work] = store.ownership.work_runs()
    assert work.kind == "ingest" and work.wall_s > 0 and work.cpu_s >= 0  # recorded though it failed
    assert work.detail == {"sources": 1, "documents": 3}


def test_chatbot_cost_prints_the_plan_and_refuses_a_bad_volume(store, capsys):
    url = store.url
    assert main(["cost", "--conversations-per-month", "50000", "--db", url, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["monthly_usd"]) == {"this_machine", "one_gpu", "api_model", "vendor", "people_only"}
    assert printed["break_even_conversations"]["vendor"] > 0
    assert main(["cost", "--conversations-per-month", "0", "--db", url]) == 2
    assert "at least 1" in capsys.readouterr().err
