"""The embedding and retrieval benchmarks.

`embed`: sentences per second through our embedder (the one ingest uses) against plain
sentence-transformers fp32 `encode` on the same sentences. `retrieval`: single-query latency of what
hybrid search does per question (embed the question, a flat inner-product FAISS search, BM25 over
every chunk) at 10k and 100k chunks, built from a real help centre's chunks repeated with noise; the
fusion and quote choice after it cost the same at any size and are in the `turn` figures. It knows
nothing about answers.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import numpy as np

from chatbot.reporting.report import percentile
from knowledge.lexical import BM25, tokenize


def embed_bench(embedder, model_path: str, sentences: Sequence[str]) -> dict:
    """Sentences/s of `embedder.embed` and of plain `SentenceTransformer(model_path).encode`, same sentences."""
    from sentence_transformers import SentenceTransformer

    embedder.warm_up()
    embedder.embed(list(sentences[:32]))
    began = time.perf_counter()
    embedder.embed(list(sentences))
    ours = len(sentences) / (time.perf_counter() - began)
    plain = SentenceTransformer(model_path, device="cpu")
    plain.encode(list(sentences[:32]))
    began = time.perf_counter()
    plain.encode(list(sentences), batch_size=32)
    baseline = len(sentences) / (time.perf_counter() - began)
    return {
        "sentences": len(sentences),
        "sentences_per_s": round(ours, 1),
        "baseline_sentences_per_s": round(baseline, 1),
        "speedup": round(ours / baseline, 2),
    }


def retrieval_bench(embedder, texts: Sequence[str], questions: Sequence[str], sizes: Sequence[int]) -> dict:
    """p50/p99 ms of one question's embedding, dense search and BM25 scoring at each size of chunks."""
    import faiss

    vectors = np.asarray(embedder.embed(list(texts)), dtype=np.float32)
    tokens = [tokenize(t) for t in texts]
    rng = np.random.default_rng(13)
    embedder.embed_batch(list(questions))  # warm-up: the first calls pay one-off costs
    embed_ms = []
    for question in questions:  # `embed_batch`: the embedder's memory of recent questions bypassed
        began = time.perf_counter()
        embedder.embed_batch([question])
        embed_ms.append((time.perf_counter() - began) * 1000)
    out = {}
    for size in sizes:
        rows = np.resize(np.arange(len(texts)), size)
        noisy = vectors[rows] + rng.normal(0, 0.02, (size, vectors.shape[1])).astype(np.float32)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        dense = faiss.IndexFlatIP(vectors.shape[1])
        dense.add(noisy)
        lexical = BM25([tokens[i] for i in rows])
        times = []
        for question, embedding_ms in zip(questions, embed_ms):
            vector = np.asarray(embedder.embed([question]), dtype=np.float32)
            began = time.perf_counter()
            dense.search(vector, 60)
            lexical.scores(tokenize(question))
            times.append(embedding_ms + (time.perf_counter() - began) * 1000)
        out[str(size)] = {
            "p50_ms": round(statistics.median(times), 1),
            "p99_ms": round(percentile(times, 0.99), 1),
            "embed_p50_ms": round(statistics.median(embed_ms), 1),
            "queries": len(times),
        }
    return out
