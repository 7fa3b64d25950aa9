"""The cost meter: what a turn used, and what that cost next to an API model and a human agent.

A turn's self-hosted cost is its measured compute seconds (retrieval + LLM + ASR + OCR) times the
serving machine's price per hour for the device it ran on, times the share of that machine the turn
occupied. The API shadow price is what the configured API model would have charged for the same
prompt and completion tokens (plus hosted speech-to-text for audio). Knows nothing of storage.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConfigError


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retrieval_s: float = 0.0
    llm_s: float = 0.0
    asr_s: float = 0.0
    ocr_s: float = 0.0
    audio_s: float = 0.0  # length of the customer's audio, not processing time
    device: str = "cpu"  # "cpu" or "cuda": which hardware price applies

    @property
    def compute_s(self) -> float:
        return self.retrieval_s + self.llm_s + self.asr_s + self.ocr_s


@dataclass(frozen=True)
class TurnCost:
    cost_usd: float  # self-hosted
    api_shadow_cost_usd: float  # the same turn on the configured API model


@dataclass(frozen=True)
class PriceSheet:
    hardware_usd_per_hour: dict[str, float]
    device_share: float
    api_model: str
    api_input_usd_per_million: float
    api_output_usd_per_million: float
    api_asr_usd_per_minute: float
    human_agent_usd_per_conversation: float

    @classmethod
    def from_table(
        cls,
        hardware_usd_per_hour: dict[str, float],
        device_share: float,
        api_model: str,
        api_usd_per_million_tokens: dict[str, list[float]],
        api_asr_usd_per_minute: float,
        human_agent_usd_per_conversation: float,
    ) -> "PriceSheet":
        if api_model not in api_usd_per_million_tokens:
            known = ", ".join(sorted(api_usd_per_million_tokens))
            raise ConfigError(f"no API price for '{api_model}'; add it to [prices.api_usd_per_million_tokens] or pick one of: {known}")
        prices = api_usd_per_million_tokens[api_model]
        if len(prices) != 2:
            raise ConfigError(f"API price for '{api_model}' must be [input, output] USD per 1M tokens")
        if not 0 < device_share <= 1:
            raise ConfigError("prices.device_share must be in (0, 1]")
        return cls(dict(hardware_usd_per_hour), float(device_share), api_model, float(prices[0]),
                   float(prices[1]), float(api_asr_usd_per_minute), float(human_agent_usd_per_conversation))

    def price(self, usage: Usage) -> TurnCost:
        if usage.device not in self.hardware_usd_per_hour:
            known = ", ".join(sorted(self.hardware_usd_per_hour))
            raise ConfigError(f"no hardware price for device '{usage.device}'; set [prices.hardware_usd_per_hour] {usage.device} (known: {known})")
        per_second = self.hardware_usd_per_hour[usage.device] / 3600.0
        cost = usage.compute_s * per_second * self.device_share
        shadow = (
            usage.prompt_tokens * self.api_input_usd_per_million / 1e6
            + usage.completion_tokens * self.api_output_usd_per_million / 1e6
            + usage.audio_s / 60.0 * self.api_asr_usd_per_minute
        )
        return TurnCost(cost_usd=cost, api_shadow_cost_usd=shadow)
