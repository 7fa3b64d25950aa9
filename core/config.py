"""One config tree: defaults in code < a TOML file < CLI flags.

The TOML file is `--config PATH`, else `$CHATBOT_CONFIG`, else `./chatbot.toml` when present.
Unknown sections or keys fail with the list of known ones. Environment variables are read only
for paths and secrets (`CHATBOT_CACHE_DIR`, `CHATBOT_CONFIG`, `CHATBOT_OPERATOR_PASSWORD`).
Components never receive this whole tree: the builder hands them plain arguments.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError


@dataclass(frozen=True)
class ModelsConfig:
    llm: str = "smollm2-135m-instruct"  # a registered name, a local folder, or a hub id
    llm_backend: str = "transformers"  # "transformers" (local PyTorch) or "openai" (vLLM etc.)
    llm_base_url: str = ""  # for llm_backend="openai", e.g. http://127.0.0.1:8000/v1
    embedder: str = "all-minilm-l6-v2"  # a registered name, a local folder, or a hub id
    device: str = "auto"  # "auto" picks CUDA when present, else CPU; or "cpu" / "cuda"
    threads: int = 0  # CPU threads for torch; 0 = torch's default


@dataclass(frozen=True)
class ChunkingConfig:
    max_chars: int = 900  # a chunk's body, before its title/heading prefix
    overlap_chars: int = 150  # carried from the previous chunk of the same section


@dataclass(frozen=True)
class RetrievalConfig:
    k: int = 4  # passages put in the prompt
    candidates: int = 60  # per retriever, before fusion
    rrf_k: int = 60  # reciprocal-rank-fusion constant
    dense_weight: float = 1.0
    lexical_weight: float = 0.5  # BM25 counts half: sweep in bench/retrieval.py, README 'Measured'
    context_turns: int = 4  # earlier conversation turns used to retrieve for a follow-up


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 80
    repetition_penalty: float = 1.05
    source_sentences: int = 4  # most relevant sentences kept from each source in the prompt


@dataclass(frozen=True)
class GroundingConfig:
    min_retrieval_cosine: float = 0.35  # below: "no_knowledge" handoff, no LLM call
    off_topic_cosine: float = 0.20  # below (and no lexical match): polite off-topic refusal
    min_sentence_overlap: float = 0.5  # share of a sentence's content words found in its source
    min_sentence_cosine: float = 0.55  # embedding similarity to the closest source sentence
    evidence_sentences: int = 2  # source sentences (closest first) a claim must be found in
    direct_quote_cosine: float = 0.77  # a source sentence this close to the question is the answer (no LLM); > 1: off


@dataclass(frozen=True)
class PricesConfig:
    hardware_usd_per_hour: dict[str, float] = field(
        default_factory=lambda: {"cpu": 0.10, "cuda": 2.50}
    )  # what the serving machine costs, by device kind
    device_share: float = 1.0  # share of that machine one turn occupies while it runs
    api_model: str = "gpt-4o-mini"  # the API model whose price is shown as a shadow price
    api_usd_per_million_tokens: dict[str, list[float]] = field(
        default_factory=lambda: {
            "gpt-4o-mini": [0.15, 0.60],  # [input, output], USD per 1M tokens
            "gpt-4o": [2.50, 10.00],
            "gpt-4.1-mini": [0.40, 1.60],
        }
    )
    api_asr_usd_per_minute: float = 0.006  # shadow price of a hosted speech-to-text minute
    human_agent_usd_per_conversation: float = 4.00  # fully loaded cost of a human-handled chat


@dataclass(frozen=True)
class SpeechConfig:
    model: str = "whisper-base"  # "whisper-base", "whisper-tiny.en", or a CTranslate2 Whisper folder
    max_audio_s: float = 120.0  # longer recordings are refused with a message
    vad: bool = True  # skip silence with Silero voice-activity detection
    language: str = ""  # "" detects the language of each recording
    reply_voice: bool = False  # read replies aloud in the chat (Piper, GPL: pip install '.[voice-out]')
    reply_voice_model: str = ""  # a Piper .onnx voice; "" = the packaged en_US voice


@dataclass(frozen=True)
class VisionConfig:
    engine: str = "auto"  # "auto" (Tesseract if installed, else RapidOCR), "tesseract", "rapidocr"


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 7860
    operator_user: str = "operator"
    # the operator password comes from $CHATBOT_OPERATOR_PASSWORD (preferred) or this key
    operator_password: str = ""
    uploads_dir: str = ".chatbot/uploads"  # documents operators upload to the knowledge base


@dataclass(frozen=True)
class Config:
    index_dir: str = ".chatbot/index"
    db_url: str = "sqlite:///.chatbot/chatbot.db"
    company_name: str = "our shop"
    models: ModelsConfig = field(default_factory=ModelsConfig)
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    grounding: GroundingConfig = field(default_factory=GroundingConfig)
    prices: PricesConfig = field(default_factory=PricesConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    server: ServerConfig = field(default_factory=ServerConfig)


def cache_dir() -> Path:
    """Where set-up puts converted models: `$CHATBOT_CACHE_DIR`, else `~/.cache/chatbot`."""
    env = os.environ.get("CHATBOT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chatbot"


def _merge(obj: Any, updates: dict[str, Any], where: str) -> Any:
    """Return a copy of dataclass `obj` with `updates` applied; unknown keys fail."""
    fields = {f.name: f for f in dataclasses.fields(obj)}
    changes: dict[str, Any] = {}
    for key, value in updates.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown config key '{where}{key}'; known keys here: {known}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{where}{key}' must be a [section]")
            changes[key] = _merge(current, value, f"{where}{key}.")
        else:
            changes[key] = _coerce(current, value, f"{where}{key}")
    return dataclasses.replace(obj, **changes)


def _coerce(current: Any, value: Any, name: str) -> Any:
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{name}' must be true or false")
        return value
    if current is None:
        return value
    if isinstance(current, float) and isinstance(value, int):
        return float(value)
    if type(current) is not type(value):
        raise ConfigError(
            f"config key '{name}' must be {type(current).__name__}, got {type(value).__name__}"
        )
    return value


def load_config(path: str | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file (if any), then `overrides` (CLI flags, nested dicts)."""
    config = Config()
    path = path or os.environ.get("CHATBOT_CONFIG")
    if path is None and Path("chatbot.toml").is_file():
        path = "chatbot.toml"
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file {path} does not exist; pass an existing TOML file")
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        config = _merge(config, data, "")
    if overrides:
        config = _merge(config, overrides, "")
    return config
