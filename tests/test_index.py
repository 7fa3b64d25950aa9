import json

import pytest

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
