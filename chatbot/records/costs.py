"""The cost meter: what a turn used, and what that cost next to an API model and a human agent.

A turn's self-hosted cost is its measured compute seconds (retrieval + LLM + ASR + OCR) times the
serving machine's price per hour for the device it ran on, times the share of that machine the turn
occupied. The API shadow price is what the configured API model would have charged for the same
prompt and completion tokens (plus hosted speech-to-text for audio). The self-hosted cost is also
kept per stage, so a report shows what was charged then, not a recomputation at today's prices.
Savings against the API and against human agents are worked out here, once. Knows nothing of storage.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConfigError

STAGES = ("retrieval", "llm", "asr", "ocr", "action")  # the metered stages of a turn, each with `<stage>_s` seconds


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retrieval_s: float = 0.0
    llm_s: float = 0.0
    asr_s: float = 0.0
    ocr_s: float = 0.0
    audio_s: float = 0.0  # length of the customer's audio, not processing time
    action_s: float = 0.0  # an action's request to the company's system (chatbot/actions/)
    device: str = "cpu"  # "cpu" or "cuda": which hardware price applies

    @property
    def compute_s(self) -> float:
        return self.retrieval_s + self.llm_s + self.asr_s + self.ocr_s + self.action_s


@dataclass(frozen=True)
class TurnCost:
    cost_usd: float  # self-hosted
    api_shadow_cost_usd: float  # the same turn on the configured API model
    # the self-hosted cost by stage (they sum to cost_usd); None when the cost was not split
    retrieval_cost_usd: float | None = None
    llm_cost_usd: float | None = None
    asr_cost_usd: float | None = None
    ocr_cost_usd: float | None = None
    action_cost_usd: float | None = None

    def stage_cost_usd(self, stage: str) -> float | None:
        """The self-hosted USD charged for one of STAGES, or None when the cost was not split."""
        return getattr(self, f"{stage}_cost_usd")


@dataclass(frozen=True)
class Savings:
    vs_api_usd: float  # API shadow price minus self-hosted cost
    vs_human_usd: float  # human agents for every conversation minus (self-hosted cost + agents for handoffs)
    cost_with_handoffs_usd: float  # self-hosted cost plus a human agent for each handed-over conversation


@dataclass(frozen=True)
class PriceSheet:
    hardware_usd_per_hour: dict[str, float]
    device_share: float
    api_model: str
    api_input_usd_per_million: float
    api_output_usd_per_million: float
    api_asr_usd_per_minute: float
    human_agent_usd_per_conversation: float
    storage_usd_per_gb_month: float = 0.10  # disk for models, index versions, the database and uploads
    vendor_usd_per_resolution: float = 0.99  # a hosted assistant's price per resolved conversation (Intercom Fin)

    @classmethod
    def from_table(
        cls,
        hardware_usd_per_hour: dict[str, float],
        device_share: float,
        api_model: str,
        api_usd_per_million_tokens: dict[str, list[float]],
        api_asr_usd_per_minute: float,
        human_agent_usd_per_conversation: float,
        storage_usd_per_gb_month: float = 0.10,
        vendor_usd_per_resolution: float = 0.99,
    ) -> PriceSheet:
        if api_model not in api_usd_per_million_tokens:
            known = ", ".join(sorted(api_usd_per_million_tokens))
            raise ConfigError(
                f"no API price for '{api_model}'; add it to [prices.api_usd_per_million_tokens] or pick one of: {known}"
            )
        prices = api_usd_per_million_tokens[api_model]
        if len(prices) != 2:
            raise ConfigError(f"API price for '{api_model}' must be [input, output] USD per 1M tokens")
        if not 0 < device_share <= 1:
            raise ConfigError("prices.device_share must be in (0, 1]")
        return cls(
            dict(hardware_usd_per_hour),
            float(device_share),
            api_model,
            float(prices[0]),
            float(prices[1]),
            float(api_asr_usd_per_minute),
            float(human_agent_usd_per_conversation),
            float(storage_usd_per_gb_month),
            float(vendor_usd_per_resolution),
        )

    def hourly(self, device: str) -> float:
        """What a whole machine of `device` costs an hour (the CPU price for a device with none)."""
        return self.hardware_usd_per_hour.get(device, self.hardware_usd_per_hour.get("cpu", 0.0))

    def machine_usd(self, device: str, seconds: float) -> float:
        """A whole machine of `device` for `seconds`: how model work and server uptime are priced."""
        return seconds / 3600 * self.hourly(device)

    def price(self, usage: Usage) -> TurnCost:
        if usage.device not in self.hardware_usd_per_hour:
            known = ", ".join(sorted(self.hardware_usd_per_hour))
            raise ConfigError(
                f"no hardware price for device '{usage.device}'; set [prices.hardware_usd_per_hour] {usage.device} (known: {known})"
            )
        per_second = self.hardware_usd_per_hour[usage.device] / 3600.0 * self.device_share
        stages = {stage: getattr(usage, f"{stage}_s") * per_second for stage in STAGES}
        cost = usage.compute_s * per_second
        shadow = (
            usage.prompt_tokens * self.api_input_usd_per_million / 1e6
            + usage.completion_tokens * self.api_output_usd_per_million / 1e6
            + usage.audio_s / 60.0 * self.api_asr_usd_per_minute
        )
        return TurnCost(cost_usd=cost, api_shadow_cost_usd=shadow, **{f"{s}_cost_usd": c for s, c in stages.items()})

    def savings(self, conversations: int, handed_over: int, cost_usd: float, api_shadow_cost_usd: float) -> Savings:
        """What `conversations` (of which `handed_over` went to a person) saved, in USD; the one savings formula."""
        human = self.human_agent_usd_per_conversation
        with_handoffs = cost_usd + handed_over * human
        return Savings(
            vs_api_usd=api_shadow_cost_usd - cost_usd,
            vs_human_usd=conversations * human - with_handoffs,
            cost_with_handoffs_usd=with_handoffs,
        )


def human_cost_usd(handling_s: float, usd_per_hour: float) -> float:
    """A person's measured handling time (seconds, claim to resolve) priced at their fully loaded hourly cost."""
    return max(0.0, handling_s) / 3600.0 * usd_per_hour
