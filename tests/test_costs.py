import pytest

from chatbot.records.costs import STAGES, Savings, TurnCost, Usage
from core.errors import ConfigError
from chatbot.testing import price_sheet as sheet


def test_self_hosted_cost_is_compute_seconds_times_hourly_price_times_share():
    usage = Usage(prompt_tokens=1000, completion_tokens=100, retrieval_s=0.5, llm_s=3.1, asr_s=0.4, device="cpu")
    cost = sheet(hardware_usd_per_hour={"cpu": 0.36, "cuda": 3.6}, device_share=0.5).price(usage)
    assert cost.cost_usd == pytest.approx(4.0 * 0.36 / 3600 * 0.5)


def test_the_cost_is_kept_per_stage_and_the_stages_add_up():
    usage = Usage(retrieval_s=0.5, llm_s=3.0, asr_s=0.5, ocr_s=1.0, device="cuda")
    cost = sheet(hardware_usd_per_hour={"cpu": 0.36, "cuda": 3.6}, device_share=0.5).price(usage)
    assert cost.llm_cost_usd == pytest.approx(3.0 * 3.6 / 3600 * 0.5)
    assert sum(cost.stage_cost_usd(s) for s in STAGES) == pytest.approx(cost.cost_usd)
    assert TurnCost(0.1, 0.2).stage_cost_usd("llm") is None  # built without a split


def test_savings_count_a_human_agent_for_every_handed_over_conversation():
    saved = sheet(human_agent_usd_per_conversation=4.0).savings(
        conversations=10, handed_over=3, cost_usd=1.0, api_shadow_cost_usd=2.5
    )
    assert saved == Savings(vs_api_usd=1.5, vs_human_usd=10 * 4.0 - 1.0 - 3 * 4.0, cost_with_handoffs_usd=13.0)


def test_api_shadow_price_uses_the_token_table_and_audio_minutes():
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=500_000, audio_s=120)
    cost = sheet(api_model="gpt-4o").price(usage)
    assert cost.api_shadow_cost_usd == pytest.approx(2.50 + 5.00 + 2 * 0.006)


def test_unknown_api_model_or_device_names_the_fix():
    with pytest.raises(ConfigError, match="gpt-4o-mini"):
        sheet(api_model="nope")
    with pytest.raises(ConfigError, match="hardware_usd_per_hour"):
        sheet().price(Usage(device="tpu"))
