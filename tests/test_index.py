import json

import numpy as np
import pytest

from chatbot.answer.grounding import GroundingChecker
from chatbot.builder import build_searcher
from core.config import DEFAULTS
from core.errors import ChatbotError, NotFound
from knowledge.index import KnowledgeIndex
from knowledge.ingest import iter_documents
from knowledge.testing import HashEmbedder


@pytest.fixture
def kb(write, tmp_path):
    write("kb/returns.md", "---\nid: R\ntitle: Returns\n---\nReturn items within 30 days for a refund.")
    write("kb/shipping.md", "---\nid: S\ntitle: Shipping\n---\nStandard delivery costs 3.95 pounds.")
    write("kb/account.md", "---\nid: A\ntitle: Account\n---\nReset your password from the login page.")
    return tmp_path / "kb"


def ingest(kb, directory, embedder):
    return KnowledgeIndex(directory, embedder).ingest(iter_documents([str(kb)]), max_chars=300, overlap_chars=50)


def test_reingest_embeds_only_changed_documents_and_removes_deleted_ones(kb, tmp_path):
    embedder = HashEmbedder()
    first = ingest(kb, tmp_path / "ix", embedder)
    assert (first.added, first.documents, first.embedded_chunks) == (3, 3, 3)

    again = ingest(kb, tmp_path / "ix", embedder)
    assert (again.unchanged, again.embedded_chunks) == (3, 0)

    (kb / "shipping.md").write_text("---\nid: S\ntitle: Shipping\n---\nStandard delivery is free over 50 pounds.")
    (kb / "account.md").unlink()
    third = ingest(kb, tmp_path / "ix", embedder)
    assert (third.updated, third.removed, third.unchanged, third.embedded_chunks) == (1, 1, 1, 1)

    index = KnowledgeIndex(tmp_path / "ix", embedder).load()  # persisted, reloaded
    assert set(index.manifest["documents"]) == {"R", "S"}
    texts = [c.text for c in index.chunks.values()]
    assert any("free over 50" in t for t in texts) and not any("3.95" in t or "password" in t for t in texts)
    assert index._faiss.ntotal == len(index.chunks) == 2


def test_documents_from_another_root_survive_a_reingest(kb, write, tmp_path):
    embedder = HashEmbedder()
    write("other/faq.csv", "question,answer\nDo you ship abroad?,Yes to the EU.\n")
    ingest(kb, tmp_path / "ix", embedder)
    KnowledgeIndex(tmp_path / "ix", embedder).ingest(iter_documents([str(tmp_path / "other")]), 300, 50)
    report = ingest(kb, tmp_path / "ix", embedder)
    assert report.documents == 4 and report.removed == 0


def test_manifest_records_embedder_dimension_chunking_and_hashes(kb, tmp_path):
    ingest(kb, tmp_path / "ix", HashEmbedder())
    manifest = KnowledgeIndex(tmp_path / "ix", HashEmbedder()).load().manifest
    assert manifest["embedder"] == "hash-test" and manifest["dimension"] == 256
    assert manifest["chunking"] == {"max_chars": 300, "overlap_chars": 50, "sentences": "pysbd-en"}
    assert len(manifest["documents"]["R"]["hash"]) == 64


def test_an_index_cut_by_the_old_sentence_splitter_is_rebuilt_on_the_next_ingest(kb, tmp_path):
    embedder = HashEmbedder()
    ingest(kb, tmp_path / "ix", embedder)
    path = tmp_path / "ix" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["chunking"] = {"max_chars": 300, "overlap_chars": 50}  # as written before pysbd
    path.write_text(json.dumps(manifest))
    assert KnowledgeIndex(tmp_path / "ix", embedder).load().size > 0  # it still serves as it is
    said = []
    report = KnowledgeIndex(tmp_path / "ix", embedder).ingest(iter_documents([str(kb)]), 300, 50, progress=said.append)
    assert any("rebuilding" in m for m in said) and report.embedded_chunks == report.chunks


def test_missing_and_damaged_indexes_say_how_to_rebuild(kb, tmp_path):
    with pytest.raises(NotFound, match="chatbot ingest"):
        KnowledgeIndex(tmp_path / "none", HashEmbedder()).load()
    ingest(kb, tmp_path / "ix", HashEmbedder())
    (tmp_path / "ix" / "dense.faiss").write_bytes(b"garbage")
    with pytest.raises(ChatbotError, match="--rebuild"):
        KnowledgeIndex(tmp_path / "ix", HashEmbedder()).load()


def test_hybrid_search_returns_one_result_per_document_best_first(kb, tmp_path):
    embedder = HashEmbedder()
    ingest(kb, tmp_path / "ix", embedder)
    searcher = build_searcher(DEFAULTS, KnowledgeIndex(tmp_path / "ix", embedder).load())
    results = searcher.search_documents("how do I get a refund for returned items", k=3)
    assert results[0].doc_id == "R"
    assert len({r.doc_id for r in results}) == len(results)
    assert results == sorted(results, key=lambda p: p.score, reverse=True)


def test_conversation_context_steers_a_vague_follow_up(kb, tmp_path):
    embedder = HashEmbedder()
    ingest(kb, tmp_path / "ix", embedder)
    searcher = build_searcher(DEFAULTS, KnowledgeIndex(tmp_path / "ix", embedder).load())
    follow_up = "and how much does it cost"
    with_context = searcher.search_documents(follow_up, k=1, context=["Tell me about standard delivery"])
    assert with_context[0].doc_id == "S"


def test_ingest_stores_each_chunks_sentences_and_their_vectors_and_an_update_replaces_them(kb, tmp_path):
    from knowledge.chunking import split_sentences

    embedder = HashEmbedder()
    (kb / "returns.md").write_text(
        "---\nid: R\ntitle: Returns\n---\nReturn items within 30 days. "
        "Refunds take 5 days.\n\nUK orders get a free label."
    )
    ingest(kb, tmp_path / "ix", embedder)
    index = KnowledgeIndex(tmp_path / "ix", embedder).load()
    assert index.manifest["version"] == 2
    for chunk in index.chunks.values():
        assert chunk.sentences == tuple(split_sentences(chunk.text)) and chunk.sentences
        np.testing.assert_allclose(index.sentence_vectors(chunk.chunk_id), embedder.embed(list(chunk.sentences)))
    assert np.load(tmp_path / "ix" / "sentences.npy").shape == (
        sum(len(c.sentences) for c in index.chunks.values()),
        256,
    )

    (kb / "returns.md").write_text("---\nid: R\ntitle: Returns\n---\nReturn items within 14 days. Keep the box.")
    (kb / "account.md").unlink()
    ingest(kb, tmp_path / "ix", embedder)
    index = KnowledgeIndex(tmp_path / "ix", embedder).load()
    by_doc = {c.doc_id: c for c in index.chunks.values()}
    assert set(by_doc) == {"R", "S"}
    assert by_doc["R"].sentences == ("Return items within 14 days.", "Keep the box.")
    np.testing.assert_allclose(
        index.sentence_vectors(by_doc["R"].chunk_id), embedder.embed(list(by_doc["R"].sentences))
    )
    np.testing.assert_allclose(
        index.sentence_vectors(by_doc["S"].chunk_id), embedder.embed(["Standard delivery costs 3.95 pounds."])
    )


def test_an_index_without_stored_sentences_still_loads_and_searches_and_the_next_ingest_stores_them(kb, tmp_path):
    embedder = HashEmbedder()
    ingest(kb, tmp_path / "ix", embedder)
    directory = tmp_path / "ix"  # rewrite it as manifest version 1 wrote it
    records = [json.loads(line) for line in (directory / "chunks.jsonl").read_text().splitlines()]
    (directory / "chunks.jsonl").write_text(
        "".join(json.dumps({k: v for k, v in r.items() if k != "sentences"}) + "\n" for r in records)
    )
    (directory / "sentences.npy").unlink()
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["version"] = 1
    (directory / "manifest.json").write_text(json.dumps(manifest))

    said = []
    index = KnowledgeIndex(directory, embedder).load(progress=said.append)
    assert any("stores no sentences" in m and "ingest" in m for m in said)
    results = build_searcher(DEFAULTS, index).search_documents("how do I get a refund for returned items", k=3)
    assert results[0].doc_id == "R" and results[0].sentences == ("Return items within 30 days for a refund.",)
    assert results[0].sentence_vectors is None  # the grounding check embeds them per turn, as before
    checker = GroundingChecker(embedder, 0.5, 0.3, 2)
    assert checker.check("Return items within 30 days for a refund.", results[:1], "refund?").supported

    said.clear()
    report = KnowledgeIndex(directory, embedder).ingest(iter_documents([str(kb)]), 300, 50, progress=said.append)
    assert report.embedded_chunks == 0 and any("splitting and embedding" in m for m in said)  # no chunk again
    said.clear()
    index = KnowledgeIndex(directory, embedder).load(progress=said.append)
    assert not said and index.manifest["version"] == 2 and (directory / "sentences.npy").is_file()


def test_a_damaged_sentence_file_says_how_to_rebuild(kb, tmp_path):
    ingest(kb, tmp_path / "ix", HashEmbedder())
    np.save(tmp_path / "ix" / "sentences.npy", np.zeros((1, 256), dtype=np.float32))
    with pytest.raises(ChatbotError, match="--rebuild"):
        KnowledgeIndex(tmp_path / "ix", HashEmbedder()).load()


def test_a_single_text_is_embedded_once_and_its_vector_cannot_be_changed_by_a_caller():
    class Counting(HashEmbedder):
        def __init__(self):
            super().__init__()
            self.batches = []
            self.recent_texts = 2

        def embed_batch(self, texts):
            self.batches.append(list(texts))
            return super().embed_batch(texts)

    embedder = Counting()
    first = embedder.embed(["Where is my parcel?"])
    first[0, :] = 0.0  # a caller scribbling on its copy
    again = embedder.embed(["Where is my parcel?"])
    assert embedder.batches == [["Where is my parcel?"]] and np.linalg.norm(again[0]) == pytest.approx(1.0)
    assert np.array_equal(again, embedder.embed_batch(["Where is my parcel?"]))
    embedder.embed(["a refund"]), embedder.embed(["a return label"])  # the oldest falls out (2 remembered)
    embedder.embed(["Where is my parcel?"])
    assert embedder.batches[-1] == ["Where is my parcel?"]
    embedder.embed(["a refund", "a return label"])  # batches are not looked up
    assert sorted(embedder.batches[-1]) == ["a refund", "a return label"]  # longest first (less padding)


def test_embedding_in_batches_sorted_by_length_keeps_every_row_with_its_text():
    from knowledge.testing import HashEmbedder

    embedder = HashEmbedder()
    embedder.batch_size = 3
    texts = ["a much longer text about returns and refunds", "short", "medium length one", "x", "shipping costs money"]
    together = embedder.embed(texts)
    one_by_one = [embedder.embed([t, "pad"])[0] for t in texts]
    assert together.shape == (5, embedder.dimension)
    assert all(np.allclose(row, alone) for row, alone in zip(together, one_by_one))
