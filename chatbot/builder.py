"""The one place that knows the concrete classes: turns a `Config` into wired parts. Backends are picked by
name from plain dicts; a wrong name lists the valid ones."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from core.config import Config
from chatbot.records.costs import PriceSheet
from core.errors import ConfigError
from chatbot.answer.grounding import GroundingChecker
from chatbot.answer.llm import ChatModel, OpenAIChatModel, TransformersChatModel
from chatbot.answer.window_reader import reader_for
from chatbot.models import EMBEDDERS, KNOWN_LLMS, SPEECH, resolve
from chatbot.pipeline import Pipeline, Settings
from chatbot.actions.build import build_action_desk, build_router, calibrate_routing, identifiers
from chatbot.copilot import Copilot
from chatbot.records.store import Store
from chatbot.reporting.ownership import stored_paths
from knowledge.embedding import SentenceTransformerEmbedder
from knowledge.index import KnowledgeIndex
from knowledge.rerank import TrainingSettings as RerankSettings
from knowledge.search import HybridSearcher, Searcher
from knowledge.types import Source

Progress = Callable[[str], None]

MODEL_CARD = "chatbot_model.json"  # {"name", "base", "fingerprint"}: how a model folder made here names itself
PROMOTION = "promotion.json"  # written beside a model `chatbot improve` promoted


def _model_name(setting: str, path: str) -> str:
    """The name reports show: the folder's own name (model card or promotion record), else the `[models] llm`
    setting."""
    for record in (Path(path) / MODEL_CARD, Path(path) / PROMOTION):
        if record.is_file():
            return json.loads(record.read_text(encoding="utf-8")).get("name") or setting
    return setting


def promoted_model(base: str, promoted_dir: str) -> tuple[str, str] | None:
    """(folder, name) of the model `chatbot improve` promoted over `base` into `promoted_dir`, if any.
    A model promoted over another base (the config's `llm` changed since) does not serve."""
    record_path = Path(promoted_dir) / PROMOTION if promoted_dir else None
    if record_path is None or not record_path.is_file():
        return None
    record = json.loads(record_path.read_text(encoding="utf-8"))
    if record.get("base") != base:
        return None
    return str(Path(promoted_dir)), _model_name(base, promoted_dir)


def _serving_promoted(config: Config) -> tuple[str, str] | None:
    """The promoted model that serves instead of `[models] llm`; never over a server's (openai) model."""
    if config.models.llm_backend == "openai":
        return None
    return promoted_model(config.models.llm, config.models.promoted_dir)


def serving_model_name(config: Config) -> str:
    """The name of the LLM that answers: the promoted model's, else `[models] llm` (loads nothing)."""
    promoted = _serving_promoted(config)
    return promoted[1] if promoted else config.models.llm


def _transformers_llm(config: Config, path: str) -> ChatModel:
    m = config.models
    return TransformersChatModel(
        path,
        name=_model_name(m.llm, path),
        device=m.device,
        threads=m.threads,
        repetition_penalty=config.generation.repetition_penalty,
    )


def _ctranslate2_llm(config: Config, path: str) -> ChatModel:
    from chatbot.answer.llm_ct2 import CTranslate2ChatModel

    m = config.models
    g = config.generation
    return CTranslate2ChatModel(
        path,
        name=_model_name(m.llm, path),
        device=m.device,
        threads=m.threads,
        repetition_penalty=g.repetition_penalty,
        max_batch=g.max_batch,
        max_waiting=g.max_waiting,
        parallel_batches=g.parallel_batches,
    )


def _openai_llm(config: Config, name: str) -> ChatModel:
    m = config.models
    return OpenAIChatModel(m.llm_base_url, name, device="cpu" if m.device == "cpu" else "cuda")


LLM_BACKENDS: dict[str, Callable[[Config, str], ChatModel]] = {
    "transformers": _transformers_llm,
    "openai": _openai_llm,
    "ctranslate2": _ctranslate2_llm,  # a folder made by `chatbot export`
}


def build_embedder(config: Config, progress: Progress = lambda m: None) -> SentenceTransformerEmbedder:
    from chatbot.answer.llm import pick_device

    name = config.models.embedder
    return SentenceTransformerEmbedder(
        resolve(name, EMBEDDERS, "embedder", progress), name=name, device=pick_device(config.models.device)
    )


def build_index(config: Config, embedder=None) -> KnowledgeIndex:
    return KnowledgeIndex(config.index_dir, embedder or build_embedder(config))


def build_searcher(config: Config, index: KnowledgeIndex) -> Searcher:
    """Hybrid search; with `[retrieval] rerank` on and a reranker trained in the index, reranked."""
    r = config.retrieval
    searcher = HybridSearcher(
        index,
        index.embedder,
        candidates=r.candidates,
        rrf_k=r.rrf_k,
        dense_weight=r.dense_weight,
        lexical_weight=r.lexical_weight,
        context_term_weight=r.context_term_weight,
    )
    if not r.rerank:
        return searcher
    from chatbot.answer.llm import pick_device
    from knowledge.rerank import RerankingSearcher, load_reranker

    reranker = load_reranker(index, device=pick_device(config.models.device))
    if reranker is None:  # none trained yet (`chatbot ingest` trains it): search as without
        return searcher
    return RerankingSearcher(searcher, reranker, candidates=r.rerank_candidates, weight=r.rerank_weight, rrf_k=r.rrf_k)


def build_rerank_settings(config: Config) -> RerankSettings:
    r = config.retrieval
    return RerankSettings(
        sentences_per_chunk=r.rerank_sentences_per_chunk,
        max_questions=r.rerank_max_questions,
        batch_size=r.rerank_batch_size,
        learning_rate=r.rerank_learning_rate,
        temperature=r.rerank_temperature,
        max_length=r.rerank_max_length,
        practice=config.practice.train_reranker,
    )


def train_reranker(config: Config, index: KnowledgeIndex, progress: Progress = lambda m: None) -> dict:
    """Train the help centre's reranker into the index folder, unless the cached one is up to date;
    returns `{"trained": bool, ...reranker.json}`. `index` must be loaded or just ingested."""
    from chatbot.answer.llm import pick_device
    from knowledge.rerank import ensure_reranker

    base = resolve(config.models.embedder, EMBEDDERS, "embedder", progress)
    return ensure_reranker(index, base, build_rerank_settings(config), pick_device(config.models.device), progress)


def calibrate_decision(
    config: Config,
    index: KnowledgeIndex,
    questions_file: str | Path,
    split: str = "dev",
    target_precision: float | None = None,
    progress: Progress = lambda m: None,
    only_if_stale: bool = False,
) -> dict:
    """Train (or reuse) the answer / hand-over decision on `index` and store the threshold chosen on
    `questions_file`'s `split` in its manifest (`chatbot.answer.calibration`); returns what was stored,
    with "trained" and "up_to_date". `only_if_stale`: keep the stored threshold when it was chosen for
    this model (these documents), this question file's content, split and target."""
    from chatbot.answer.calibration import DecisionSettings, calibrate, fingerprint
    from chatbot.answer.decision import MANIFEST_KEY, MODEL_FILE
    from chatbot.answer.replies import MAX_QUOTE_CHARS, quoted
    from chatbot.reporting.evaluation import load_questions, select

    target = config.grounding.target_precision if target_precision is None else target_precision
    if not 0 < target <= 1:
        raise ConfigError("the target precision must be above 0 and at most 1, e.g. 0.9")
    questions = select(load_questions(questions_file), split)  # fails fast, before any model loads
    routing = calibrate_routing(config, index, build_searcher(config, index), questions, split, progress)
    questions = [q for q in questions if q.action is None]  # action questions choose the router's thresholds
    digest = hashlib.sha256(Path(questions_file).read_bytes()).hexdigest()
    g, practice = config.grounding, config.practice.train_decision
    learns = (g.decision_learns_from_questions, g.learn_window_choice)  # the decision; which window to quote
    settings = DecisionSettings(
        config.retrieval.k, g.quote_sentences, MAX_QUOTE_CHARS, g.decision_max_questions, 1.0, practice
    )
    stored = index.manifest.get(MANIFEST_KEY) or {}
    if (
        only_if_stale
        and stored.get("help_centre_model") == fingerprint(index, settings)
        and stored.get("questions_sha256") == digest
        and stored.get("split") == split
        and stored.get("target_precision") == target
        and (Path(index.directory) / MODEL_FILE).is_file()
        and (stored.get("learned", False), stored.get("windows", False)) == learns
    ):
        progress(f"answer decision and its threshold in {index.directory} are up to date")
        return {**stored, "trained": False, "up_to_date": True, "action_routing": routing}
    chosen = calibrate(
        build_searcher(config, index),
        build_checker(config, index.embedder),
        settings,
        questions,
        target,
        split,
        str(questions_file),
        lambda window, passages: quoted(*window.sentences),
        g.min_retrieval_cosine,
        progress,
        extra={"questions_sha256": digest, "learned": learns[0], "windows": learns[1]},
        learn=learns[0],
        learn_windows=learns[1],
    )
    return {**chosen, "up_to_date": False, "action_routing": routing}


def _llm_backend(config: Config, progress: Progress) -> tuple[str, str]:
    """(backend name, folder or served model name) for `[models] llm`."""
    backend = config.models.llm_backend
    if backend not in LLM_BACKENDS:
        raise ConfigError(f"unknown models.llm_backend '{backend}'; choose one of: {', '.join(LLM_BACKENDS)}")
    from chatbot.answer.llm_ct2 import is_ctranslate2_model

    # a server (openai) holds its own model and `llm` is the name it serves; local backends need a folder
    path = config.models.llm if backend == "openai" else resolve(config.models.llm, KNOWN_LLMS, "LLM", progress)
    if backend == "transformers" and is_ctranslate2_model(path):
        backend = "ctranslate2"  # a CTranslate2 export is served by its own backend, whatever the default says
    return backend, path


def build_llm(config: Config, progress: Progress = lambda m: None) -> ChatModel:
    """`[models] llm`, or the model `chatbot improve` promoted over it into `[models] promoted_dir`."""
    promoted = _serving_promoted(config)
    if promoted:
        progress(f"serving {promoted[1]}, promoted over {config.models.llm} (in {promoted[0]})")
        config = config.with_overrides({"models": {"llm": promoted[0], "llm_backend": "transformers"}})
    backend, path = _llm_backend(config, progress)
    return LLM_BACKENDS[backend](config, path)


def build_llm_for(config: Config, model: str, progress: Progress = lambda m: None) -> tuple[ChatModel, str]:
    """A local model other than `[models] llm` (a registered name or a folder) served with the rest of
    `config`, on the local backend that suits it (CTranslate2 for an export, else transformers);
    returns the model and its backend's name. Fine-tuning evaluation and the benchmarks use it."""
    config = config.with_overrides({"models": {"llm": model, "llm_backend": "transformers"}})
    backend, path = _llm_backend(config, progress)
    return LLM_BACKENDS[backend](config, path), backend


def build_prices(config: Config) -> PriceSheet:
    p = config.prices
    return PriceSheet.from_table(
        p.hardware_usd_per_hour,
        p.device_share,
        p.api_model,
        p.api_usd_per_million_tokens,
        p.api_asr_usd_per_minute,
        p.human_agent_usd_per_conversation,
        p.storage_usd_per_gb_month,
        p.vendor_usd_per_resolution,
    )


def build_speech(config: Config, progress: Progress = lambda m: None):
    from chatbot.inputs.speech import WhisperSpeechToText

    s = config.speech
    return WhisperSpeechToText(
        resolve(s.model, SPEECH, "speech model", progress),
        name=s.model,
        device=config.models.device,
        max_audio_s=s.max_audio_s,
        vad=s.vad,
        language=s.language or None,
        threads=config.models.threads,
    )


def build_vision(config: Config):
    from chatbot.inputs.vision import build_reader

    return build_reader(config.vision.engine)


def build_voice_out(config: Config):
    """Replies read aloud (Piper, GPL: an optional extra), or None when `[speech] reply_voice` is off."""
    if not config.speech.reply_voice:
        return None
    from chatbot.outputs.voice_out import PiperVoiceOut

    return PiperVoiceOut(config.speech.reply_voice_model)


BELOW_THRESHOLD = ("suggest", "handoff", "llm")


def build_settings(config: Config, index: KnowledgeIndex | None = None) -> Settings:
    """The engine's plain settings, read from the one config tree; with `index`, the answer decision
    calibrated into it (`chatbot calibrate`) when `[grounding] trained_decision` is on."""
    from chatbot.answer.decision import load_answer_model

    g = config.grounding
    if g.below_threshold not in BELOW_THRESHOLD:
        raise ConfigError(
            f"unknown grounding.below_threshold '{g.below_threshold}'; choose one of: {', '.join(BELOW_THRESHOLD)}"
        )
    model = load_answer_model(index.directory, index.manifest) if index is not None and g.trained_decision else None
    return Settings(
        company=config.company_name,
        k=config.retrieval.k,
        context_turns=config.retrieval.context_turns,
        max_new_tokens=config.generation.max_new_tokens,
        source_sentences=config.generation.source_sentences,
        min_retrieval_cosine=g.min_retrieval_cosine,
        off_topic_cosine=g.off_topic_cosine,
        direct_quote_cosine=g.direct_quote_cosine,
        evidence_answer_cosine=g.evidence_answer_cosine,
        quote_sentences=g.quote_sentences,
        clarify_vague=g.clarify_vague,
        chunk_max_chars=config.chunking.max_chars,
        chunk_overlap_chars=config.chunking.overlap_chars,
        answer_model=model if model is not None and model.threshold is not None else None,
        below_threshold=g.below_threshold,
        suggest_windows=g.suggest_windows,
        suggest_sentences=g.suggest_sentences,
        reader=reader_for(g.suggest_reader, config.models.device, config.models.threads),
        topic_distance=config.handoff.topic_distance,
        resolution_window_h=config.analytics.resolution_window_h,
    )


def build_checker(config: Config, embedder) -> GroundingChecker:
    g = config.grounding
    return GroundingChecker(
        embedder, g.min_sentence_overlap, g.min_sentence_cosine, g.evidence_sentences, known_names=config.company_name
    )


def build_pipeline(
    config: Config, progress: Progress = lambda m: None, speech: bool = False, vision: bool = False
) -> Pipeline:
    """`speech`/`vision` add voice and screenshot input (their models load lazily too)."""
    index = build_index(config).load()
    return wire_pipeline(
        config,
        index,
        build_llm(config, progress),
        build_checker(config, index.embedder),
        speech=build_speech(config, progress) if speech else None,
        vision=build_vision(config) if vision else None,
    )


def wire_pipeline(
    config: Config,
    index,
    llm,
    checker: GroundingChecker,
    speech=None,
    vision=None,
    settings: Settings | None = None,
    webhook=None,
) -> Pipeline:
    """The engine over given parts, wired as every caller gets it: searcher, store, prices, settings, the
    people's desk (with its webhook) and the help-centre answers. Tests pass stand-in parts here."""
    pipeline = Pipeline(
        searcher=build_searcher(config, index),
        index=index,
        llm=llm,
        store=Store(config.db_url, identifiers=identifiers(config)),
        checker=checker,
        prices=build_prices(config),
        settings=settings or build_settings(config, index),
        speech=speech,
        vision=vision,
    )
    pipeline.desk = build_desk(config, pipeline, webhook)
    pipeline.faq = build_faq(config, pipeline)
    pipeline.actions = build_action_desk(config, pipeline.store.actions)
    pipeline.router = build_router(config, index)
    pipeline.stored_paths = stored_paths(config)  # the cost of ownership's storage
    return pipeline


def build_webhook(config: Config):
    """The live-handoff webhook sender, or None when `[handoff] webhook_url` is empty."""
    h = config.handoff
    if not h.webhook_url:
        return None
    from chatbot.outputs.webhook import WebhookSender

    return WebhookSender(
        h.webhook_url,
        os.environ.get("CHATBOT_WEBHOOK_SECRET") or h.webhook_secret,
        retries=h.webhook_retries,
        backoff_s=h.webhook_backoff_s,
        timeout_s=h.webhook_timeout_s,
    )


def build_desk(config: Config, pipeline: Pipeline, webhook=None):
    """The live-handoff desk over the pipeline's store: prices, display names, the webhook, the FAQ folder."""
    from chatbot.handoff import LiveDesk

    h = config.handoff
    webhook = webhook or build_webhook(config)

    def found(question: str) -> list[Source]:
        return [p.source for p in pipeline.searcher.search_documents(question, k=3)]

    desk = LiveDesk(
        pipeline.store,
        config.prices.human_agent_usd_per_hour,
        notify=webhook.send if webhook is not None else None,
        search=found,
        display_names={name: a.display_name for name, a in h.agents.items() if a.display_name},
        events=h.webhook_events,
        team_name=h.team_display_name or f"{config.company_name} support",
    )
    if h.copilot:
        llm = build_llm_for(config, h.copilot_model)[0] if h.copilot_model else pipeline.llm
        search = lambda q: pipeline.searcher.search(q, k=config.retrieval.k)  # noqa: E731
        desk.copilot = Copilot(llm, config.company_name, search, config.generation.max_new_tokens)
    return desk


def build_faq(config: Config, pipeline: Pipeline):
    """The help-centre answers people save, over the pipeline's store and index: folder and review rule."""
    from chatbot.faq_review import FaqDesk

    return FaqDesk(
        pipeline.store,
        config.handoff.faq_dir,
        pipeline.reindex,
        pipeline.forget,
        config.handoff.faq_review,
        keep=[config.company_name],
    )
