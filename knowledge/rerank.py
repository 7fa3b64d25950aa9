"""A reranker trained on the help centre itself, and a searcher that applies it to fused candidates.

Why a query encoder and not a cross-encoder: MiniLM-L6 (the only model that ships) as a
cross-encoder costs ~90 ms per (question, chunk) pair at 256 tokens on this project's 2-core CPU
machine, ~2 s to rerank 20 candidates, and its training (forward and backward of every pair) an
hour. So the trained model is the embedder fine-tuned on the *question side only*: chunk vectors
stay those of the index (frozen, never embedded again), training runs only short pseudo-questions
through the model, and reranking costs one question embedding plus a dot product with the
candidates' stored vectors.

Training data, built from the index alone (any help centre, any language the embedder knows):
- pseudo-questions: each document's title (an FAQ CSV row's title is its question), each heading
  (prefixed with the title when it is generic: shared by several documents, or under 3 words), and
  up to `sentences_per_chunk` body sentences per chunk (inverse cloze: which chunk holds this?);
  a text that points at two documents is dropped; at most `max_questions`, sampled from all kinds
  (on the Arduino dev split, a mostly-sentence mix beat titles and headings alone);
- positives: the chunks under that title or heading, or holding that sentence;
- negatives: every other chunk of the index, so the ones the hybrid searcher ranks highest for the
  pseudo-question (its hard negatives: same product, sibling articles, hub pages listing titles)
  dominate the softmax. Loss: multi-positive softmax cross-entropy over the whole index.

The model is cached in `<index>/reranker/` with `reranker.json`: a fingerprint of the documents'
content hashes, the embedder and the training settings. `chatbot ingest` retrains only when that
fingerprint changed; the folder is replaced atomically. The reranker only rescores chunk vectors
of the index, so one trained before a later upload still serves (until the next ingest retrains).
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.errors import ChatbotError
from core.files import build_folder_atomic
from core.lazy import Lazy
from knowledge.chunking import split_sentences
from knowledge import practice
from knowledge.index import manifest_fingerprint
from knowledge.practice import Section
from knowledge.search import best_per_document
from knowledge.types import Chunk, Passage

FOLDER = "reranker"  # inside the index folder
META = "reranker.json"
RECIPE_VERSION = 1  # bump when pseudo-questions or training change: a cached reranker is retrained
SEED = 13  # fixes the sentences sampled and the training order


class Reranker(Protocol):
    """Scores candidate passages for a question; higher is better. Knows nothing about fusion."""

    name: str

    def warm_up(self) -> None: ...  # load the model now rather than on the first question

    def scores(self, query: str, passages: Sequence[Passage], context: Sequence[str] = ()) -> np.ndarray:
        """One score per passage; `context` is earlier turns, oldest first."""
        ...


def query_text(query: str, context: Sequence[str] = ()) -> str:
    """The question followed by earlier turns, newest first (as the hybrid searcher's dense query)."""
    context = [c for c in context if c and c.strip()]
    return query + ("\n" + "\n".join(reversed(context)) if context else "")


# ---- training data ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PseudoQuestion:
    text: str
    doc_id: str
    positives: tuple[int, ...]  # chunk ids that answer it
    kind: str  # "title", "heading", "sentence" or "practice"


def pseudo_questions(
    chunks: Iterable[Chunk],
    sentences_per_chunk: int,
    max_questions: int,
    seed: int = SEED,
    practice: Sequence[tuple[str, Section]] = (),
) -> list[PseudoQuestion]:
    """Questions a help centre answers, read off its own structure (see the module docstring), with
    `practice` questions (`knowledge.practice.kept_questions`), their section's chunks the positives."""
    by_doc: dict[str, list[Chunk]] = defaultdict(list)
    for chunk in sorted(chunks, key=lambda c: c.chunk_id):
        by_doc[chunk.doc_id].append(chunk)
    heading_docs: dict[str, set[str]] = defaultdict(set)
    for doc_id, doc_chunks in by_doc.items():
        for chunk in doc_chunks:
            for heading in chunk.headings:
                heading_docs[heading.strip().lower()].add(doc_id)

    rng = random.Random(seed)
    titles: list[PseudoQuestion] = []
    headings: list[PseudoQuestion] = []
    sentences: list[PseudoQuestion] = []
    for doc_id, doc_chunks in by_doc.items():
        title = doc_chunks[0].title.strip()
        all_ids = tuple(c.chunk_id for c in doc_chunks)
        if title:
            titles.append(PseudoQuestion(title, doc_id, all_ids, "title"))
        under: dict[str, list[int]] = defaultdict(list)
        for chunk in doc_chunks:
            for heading in dict.fromkeys(h.strip() for h in chunk.headings if h.strip()):
                under[heading].append(chunk.chunk_id)
        for heading, ids in under.items():
            generic = len(heading_docs[heading.lower()]) > 1 or len(heading.split()) < 3
            text = f"{title}: {heading}" if generic and title else heading
            headings.append(PseudoQuestion(text, doc_id, tuple(ids), "heading"))
        if sentences_per_chunk > 0:
            for chunk in doc_chunks:
                candidates = [
                    s
                    for s in (chunk.sentences or split_sentences(chunk.text))
                    if 6 <= len(s.split()) <= 40 and not s.lstrip().startswith(("#", "|"))
                ]
                for sentence in rng.sample(candidates, min(sentences_per_chunk, len(candidates))):
                    holders = tuple(c.chunk_id for c in doc_chunks if sentence in c.text)
                    sentences.append(PseudoQuestion(sentence, doc_id, holders or (chunk.chunk_id,), "sentence"))

    written = [PseudoQuestion(text, section.doc_id, section.chunk_ids, "practice") for text, section in practice]
    # a text that points at two documents teaches nothing: drop it everywhere
    docs_of_text: dict[str, set[str]] = defaultdict(set)
    for q in titles + headings + sentences + written:
        docs_of_text[q.text.lower()].add(q.doc_id)
    out: list[PseudoQuestion] = []
    seen: set[str] = set()
    for q in titles + headings + sentences + written:
        key = q.text.lower()
        if len(docs_of_text[key]) == 1 and key not in seen:
            seen.add(key)
            out.append(q)
    return rng.sample(out, max_questions) if len(out) > max_questions else out  # a sample of every kind


# ---- caching ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingSettings:
    """Every default lives in `core.config` ([retrieval] rerank_*); the builder passes them."""

    sentences_per_chunk: int  # body sentences per chunk used as pseudo-questions
    max_questions: int  # pseudo-questions trained on, at most (one epoch)
    batch_size: int
    learning_rate: float
    temperature: float  # softmax temperature of the cosine scores
    max_length: int  # tokens of a pseudo-question in training, longer ones are cut
    practice: bool = False  # also the practice questions a bigger model wrote (`chatbot.practice`)


def fingerprint(manifest: dict, settings: TrainingSettings, practice_digest: str = "") -> str:
    """Changes when a document, the embedder, the chunking, the recipe, a training setting or (used)
    the practice questions do. Chunk ids count too: the positives of the pseudo-questions are chunk ids.
    """
    extra = {"recipe": RECIPE_VERSION, "settings": asdict(settings)}
    if settings.practice:
        extra["practice"] = practice_digest
    return manifest_fingerprint(manifest, extra, with_chunk_ids=True)


def folder(index_dir: str | Path) -> Path:
    return Path(index_dir) / FOLDER


def read_meta(index_dir: str | Path) -> dict | None:
    """The cached reranker's `reranker.json`, or None when none was trained (or it is unreadable)."""
    path = folder(index_dir) / META
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_fresh(index, settings: TrainingSettings) -> bool:
    """True when the cached reranker was trained on these documents with these settings."""
    meta = read_meta(index.directory)
    if not meta:
        return False
    written = practice.kept_questions(index.directory, index.chunks.values(), settings.practice)
    return meta.get("fingerprint") == fingerprint(index.manifest, settings, practice.digest(written))


# ---- the trained reranker ------------------------------------------------------------------------
class QueryEncoderReranker:
    """Scores a candidate by the cosine of the fine-tuned question encoder's vector to its stored chunk
    vector (`index.cosines`): the index's own embeddings, a question-side model trained on the index."""

    def __init__(self, model_dir: str | Path, index, device: str, name: str = "query-encoder"):
        self.model_dir = Path(model_dir)
        self.index = index  # KnowledgeIndex: the chunk vectors
        self.device = device
        self.name = name
        self._model = Lazy(self._load)

    def _load(self):
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(self.model_dir), device=self.device)

    def warm_up(self) -> None:
        self._model.get()

    def scores(self, query: str, passages: Sequence[Passage], context: Sequence[str] = ()) -> np.ndarray:
        if not passages:
            return np.zeros(0, dtype=np.float32)
        vector = self._model.get().encode(
            [query_text(query, context)], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )[0]
        ids = [p.chunk.chunk_id for p in passages]
        cosines = self.index.cosines(vector, ids)
        return np.array([cosines[i] for i in ids], dtype=np.float32)


def load_reranker(index, device: str) -> QueryEncoderReranker | None:
    """The reranker cached in the index folder, or None when none was trained for this embedder."""
    meta = read_meta(index.directory)
    if not meta or meta.get("embedder") != index.manifest.get("embedder"):
        return None
    model_dir = folder(index.directory) / "model"
    if not model_dir.is_dir():
        return None
    return QueryEncoderReranker(model_dir, index, device)


def _chunk_matrix(snap) -> tuple[list[int], np.ndarray]:
    """Every chunk's stored vector (rows in chunk id order) of one `IndexSnapshot`, and those ids."""
    ids = sorted(snap.chunks)
    dimension = int(snap.manifest["dimension"])
    matrix = np.zeros((len(ids), dimension), dtype=np.float32)
    for column in range(dimension):  # cosines with the unit vectors read the stored vectors back
        unit = np.zeros(dimension, dtype=np.float32)
        unit[column] = 1.0
        values = snap.cosines(unit, ids)
        matrix[:, column] = [values[i] for i in ids]
    return ids, matrix


def train_reranker(
    index,
    base_model: str,
    settings: TrainingSettings,
    device: str = "cpu",
    progress: Callable[[str], None] = lambda m: None,
    show_progress: bool = True,
) -> dict:
    """Fine-tune `base_model` (the index's embedder folder) on the question side; cache it in the index.

    Trains on the version of the index published when it starts (a re-index meanwhile is not seen, and
    the fingerprint recorded is that version's, so the next `ensure_reranker` trains again). Returns
    what `reranker.json` records: fingerprint, pseudo-question counts, seconds, size.
    """
    snap = index.snapshot()  # every read below from one version
    if not snap.chunks:
        raise ChatbotError("the index is empty: ingest a help centre before training a reranker")
    started = time.perf_counter()
    written = practice.kept_questions(index.directory, snap.chunks.values(), settings.practice)
    questions = pseudo_questions(
        snap.chunks.values(), settings.sentences_per_chunk, settings.max_questions, SEED, written
    )
    if not questions:
        raise ChatbotError("the help centre has no titles, headings or sentences to train a reranker on")
    ids, matrix = _chunk_matrix(snap)
    kinds = {kind: sum(q.kind == kind for q in questions) for kind in ("title", "heading", "sentence", "practice")}
    progress(
        f"training the reranker on {len(questions)} pseudo-questions from {snap.document_count()} documents "
        f"({kinds['title']} titles, {kinds['heading']} headings, {kinds['sentence']} sentences, "
        f"{kinds['practice']} practice questions)"
    )
    model, losses = _train(base_model, questions, ids, matrix, settings, device, show_progress)
    seconds = time.perf_counter() - started
    meta = {
        "fingerprint": fingerprint(snap.manifest, settings, practice.digest(written)),
        "embedder": snap.manifest.get("embedder"),
        "recipe": RECIPE_VERSION,
        "settings": asdict(settings),
        "questions": len(questions),
        **kinds,
        "documents": snap.document_count(),
        "train_seconds": round(seconds, 1),
        "first_loss": round(float(np.mean(losses[:10])), 4),
        "last_loss": round(float(np.mean(losses[-10:])), 4),
    }
    _save_reranker(index.directory, model, meta)
    progress(f"reranker trained in {seconds:.0f} s ({meta['size_mb']} MB) in {folder(index.directory)}")
    return meta


def _train(
    base_model: str,
    questions: list[PseudoQuestion],
    ids: list[int],
    matrix: np.ndarray,
    settings: TrainingSettings,
    device: str,
    show_progress: bool,
) -> tuple[Any, list[float]]:
    """`base_model` loaded and trained for one epoch on `questions` against the frozen chunk vectors
    `matrix` (rows: chunk `ids`); returns the model (a SentenceTransformer, in eval mode, with its
    serving length) and each batch's loss. Knows nothing about where the model is saved.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    row = {chunk_id: i for i, chunk_id in enumerate(ids)}
    chunks_t = torch.from_numpy(matrix)
    torch.manual_seed(SEED)  # before loading: fixes any weights the model initialises, and dropout
    model = SentenceTransformer(str(base_model), device=device)
    serving_length = model.max_seq_length
    model.max_seq_length = settings.max_length
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
    order = list(range(len(questions)))
    random.Random(SEED).shuffle(order)
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(order), desc="reranker", unit="question")
    model.train()
    losses: list[float] = []
    try:
        for start in range(0, len(order), settings.batch_size):
            batch = [questions[i] for i in order[start : start + settings.batch_size]]
            features = model.preprocess([q.text for q in batch])
            features = {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}
            vectors = torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)
            logits = vectors @ chunks_t.to(vectors.device).T / settings.temperature
            positive = torch.zeros_like(logits, dtype=torch.bool)
            for r, q in enumerate(batch):
                positive[r, [row[c] for c in q.positives if c in row]] = True
            # multi-positive softmax cross-entropy over every chunk of the index
            loss = (torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~positive, -1e4), 1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if bar is not None:
                bar.update(len(batch))
                bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
    finally:
        if bar is not None:
            bar.close()
    model.eval()
    model.max_seq_length = serving_length  # questions with their context are read as the embedder reads them
    return model, losses


def _save_reranker(index_dir: str | Path, model, meta: dict) -> None:
    """Replace `<index>/reranker/` atomically with `model` and `reranker.json` (`meta`, to which the
    model's size is added)."""

    def build(tmp: Path) -> None:
        model.save(str(tmp / "model"))
        meta["size_mb"] = round(sum(f.stat().st_size for f in (tmp / "model").rglob("*") if f.is_file()) / 2**20, 1)
        (tmp / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")

    build_folder_atomic(folder(index_dir), build)


def ensure_reranker(
    index,
    base_model: str,
    settings: TrainingSettings,
    device: str = "cpu",
    progress: Callable[[str], None] = lambda m: None,
) -> dict:
    """Train the reranker unless the cached one matches these documents and settings; returns
    `{"trained": bool, **reranker.json}`."""
    if is_fresh(index, settings):
        progress(f"reranker in {folder(index.directory)} is up to date")
        return {"trained": False, **(read_meta(index.directory) or {})}
    return {"trained": True, **train_reranker(index, base_model, settings, device, progress)}


# ---- applying it --------------------------------------------------------------------------------
class RerankingSearcher:
    """A `Searcher` whose top `candidates` fused chunks are reordered with a `Reranker`.

    The reranker's ranking joins the reciprocal-rank fusion as one more ranking, with `weight`
    (the searcher's fused score is kept): score = fused + weight / (rrf_k + rerank rank). Chunks
    past the first `candidates` keep their fused score. Knows nothing about answers.
    """

    def __init__(self, searcher, reranker: Reranker, candidates: int, weight: float, rrf_k: int):
        self.searcher = searcher
        self.reranker = reranker
        self.candidates = candidates
        self.weight = weight
        self.rrf_k = rrf_k

    @property
    def index(self):
        return self.searcher.index

    @property
    def embedder(self):
        return self.searcher.embedder

    def warm_up(self) -> None:
        self.searcher.warm_up()
        self.reranker.warm_up()

    def search(self, query: str, k: int = 5, context: Sequence[str] = ()) -> list[Passage]:
        # the searcher's candidates and the reranker's vectors (`index.cosines`) from one version of the index
        with self.index.pinned():
            passages = self.searcher.search(query, k=max(k, self.candidates), context=context)
            head, tail = passages[: self.candidates], passages[self.candidates :]
            scores = self.reranker.scores(query, head, context) if len(head) > 1 and self.weight > 0 else None
        if scores is not None:
            ranks = np.empty(len(head), dtype=np.int64)
            ranks[np.argsort(-scores, kind="stable")] = np.arange(len(head))
            head = [replace(p, score=p.score + self.weight / (self.rrf_k + int(r) + 1)) for p, r in zip(head, ranks)]
        return sorted(head + tail, key=lambda p: p.score, reverse=True)[:k]

    def search_documents(self, query: str, k: int = 5, context: Sequence[str] = ()) -> list[Passage]:
        """Like `search`, but one passage (the best) per document."""
        wide = max(k * 4, getattr(self.searcher, "candidates", 0), self.candidates)
        return best_per_document(self.search(query, k=wide, context=context), k)
