import pytest

from core.config import PricesConfig
from chatbot.records.costs import PriceSheet, Usage
from core.errors import ConfigError


def sheet(**changes):
    p = PricesConfig()
    values = dict(hardware_usd_per_hour=p.hardware_usd_per_hour, device_share=p.device_share, api_model=p.api_model,
                  api_usd_per_million_tokens=p.api_usd_per_million_tokens, api_asr_usd_per_minute=0.006,
                  human_agent_usd_per_conversation=4.0)
    values.update(changes)
    return PriceSheet.from_table(**values)


def test_self_hosted_cost_is_compute_seconds_times_hourly_price_times_share():
    usage = Usage(prompt_tokens=1000, completion_tokens=100, retrieval_s=0.5, llm_s=3.1, asr_s=0.4, device="cpu")
    cost = sheet(hardware_usd_per_hour={"cpu": 0.36, "cuda": 3.6}, device_share=0.5).price(usage)
    assert cost.cost_usd == pytest.approx(4.0 * 0.36 / 3600 * 0.5)


def test_api_shadow_price_uses_the_token_table_and_audio_minutes():
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=500_000, audio_s=120)
    cost = sheet(api_model="gpt-4o").price(usage)
    assert cost.api_shadow_cost_usd == pytest.approx(2.50 + 5.00 + 2 * 0.006)


def test_unknown_api_model_or_device_names_the_fix():
    with pytest.raises(ConfigError, match="gpt-4o-mini"):
        sheet(api_model="nope")
    with pytest.raises(ConfigError, match="hardware_usd_per_hour"):
        sheet().price(Usage(device="tpu"))
