"""One index for every replica (`chatbot.index_watch`): a change made through one pipeline is published in the
database and loaded live by another pipeline on the same folder and database, which never restarts."""

import threading

from chatbot.index_watch import IndexWatcher
from chatbot.testing import ScriptedChatModel, scripted_pipeline
from core.config import load_config
from knowledge.index import KnowledgeIndex
from knowledge.testing import HashEmbedder


def _replicas(shop_index, tmp_path):
    handoff = {"copilot": False, "faq_dir": str(tmp_path / "faq"), "faq_review": "none"}
    config = load_config(None, {"handoff": handoff, "chunking": {"max_chars": 300, "overlap_chars": 50}})  # as built
    db = f"sqlite:///{tmp_path}/shared.db"
    a = scripted_pipeline(config, shop_index, ScriptedChatModel("x"), db)
    b_index = KnowledgeIndex(shop_index.directory, HashEmbedder()).load()  # the other replica's own copy
    b = scripted_pipeline(config, b_index, ScriptedChatModel("x"), db)
    return config, a, b


def test_an_answer_saved_on_one_replica_is_found_on_the_other_after_one_poll(shop_index, tmp_path, write):
    config, a, b = _replicas(shop_index, tmp_path)
    refreshed = []
    watcher = IndexWatcher(b.store, b.index, lambda: refreshed.append(b.index.version()), every_s=0)
    assert not watcher.check()  # nothing published yet: nothing to load
    before = b.index.document_count()
    a.save_faq("Do you gift wrap orders?", "Yes: gift wrapping costs 2.50 pounds per item.", "sam")
    assert a.index.document_count() == before + 1 and b.index.document_count() == before  # B still has the old one
    assert b.store.index_versions.current(b.index.key) == a.index.version()
    assert watcher.check() and refreshed == [a.index.version()]  # loaded, then what depends on it refreshed
    assert b.index.document_count() == before + 1 and b.index.version() == a.index.version()
    assert "gift" in " ".join(c.text for c in b.index.chunks.values())
    assert not watcher.check()  # the same version again: nothing to do

    couriers = write("more/couriers.md", "---\nid: C\ntitle: Couriers\n---\nWe ship with DHL and Royal Mail.")
    a.reindex([str(couriers.parent)])  # an operator's upload
    assert watcher.check() and b.index.version() == a.index.version()
    assert {c.doc_id for c in b.index.chunks.values()} == {c.doc_id for c in a.index.chunks.values()} >= {"C"}


def test_a_published_version_the_folder_does_not_hold_is_read_once_not_at_every_poll(shop_index, tmp_path):
    _, a, b = _replicas(shop_index, tmp_path)
    reads = []
    b.index.reload = lambda: reads.append(1)  # the folder is not read again...
    watcher = IndexWatcher(b.store, b.index, every_s=0)
    b.store.index_versions.publish(b.index.key, "not-these-files")
    assert watcher.check() and len(reads) == 1
    assert not watcher.check() and len(reads) == 1  # ...for the same version at every poll


def test_the_watcher_polls_in_the_background_until_stopped(shop_index, tmp_path):
    _, a, b = _replicas(shop_index, tmp_path)
    loaded = threading.Event()
    watcher = IndexWatcher(b.store, b.index, loaded.set, every_s=0.05)
    watcher.start()
    try:
        a.save_faq("Can I collect in store?", "Yes, from our Bristol shop, within 5 days.", "sam")
        assert loaded.wait(10) and b.index.version() == a.index.version()
    finally:
        watcher.stop()


def test_a_replicas_health_check_reports_the_index_version_it_serves(shop_index, tmp_path):
    from fastapi.testclient import TestClient

    from ui.app import create_app

    config, a, b = _replicas(shop_index, tmp_path)
    client = TestClient(create_app(b, config))
    health = client.get("/healthz").json()
    assert health["ok"] and health["index_version"] == b.index.version() and health["documents"] == 2
    a.save_faq("Do you gift wrap orders?", "Yes: gift wrapping costs 2.50 pounds per item.", "sam")
    IndexWatcher(b.store, b.index, every_s=0).check()
    assert client.get("/healthz").json()["index_version"] == a.index.version()  # live, no restart


def test_a_servers_watcher_rebuilds_the_searcher_so_a_reranker_trained_into_the_folder_serves(shop_index, tmp_path):
    """`watcher(config, pipeline)`: a new version swaps in a searcher built from the folder as it is now
    (with the reranker trained into it, when there is one), and the settings calibrated into it."""
    from chatbot.index_watch import watcher

    config, a, b = _replicas(shop_index, tmp_path)
    searcher, settings = b.searcher, b.settings
    a.save_faq("Do you gift wrap orders?", "Yes: gift wrapping costs 2.50 pounds per item.", "sam")
    assert watcher(config, b).check()
    assert b.searcher is not searcher and b.settings is not settings
    assert "gift" in b.searcher.search("gift wrapping", k=1)[0].chunk.text
