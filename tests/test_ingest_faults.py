"""Bad help-centre files and rows are reported and left out; everything else is ingested (issue
"Safe in front of customers", point 9)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chatbot import cli
from core.errors import BadInput, NotFound
from knowledge.index import KnowledgeIndex
from knowledge.ingest import iter_documents, read_documents
from knowledge.testing import HashEmbedder

BROKEN_QUOTE_CSV = (
    "question,answer\n"
    '"Do you ship to Canada?","Not yet, sorry.\n'  # line 2: the quote never closes
    "Gift cards?,Valid 24 months.\n"
    "Warranty?,Two years on furniture.\n"
)
# control bytes but no NUL: random bytes under a text name, which latin-1 would otherwise "decode"
JUNK = bytes((i * 37) % 255 + 1 for i in range(4000))


def test_an_unclosed_quote_in_a_faq_csv_is_reported_and_the_rows_it_swallowed_are_kept(write):
    path = write("kb/faq.csv", BROKEN_QUOTE_CSV)
    reading = read_documents([str(path)])
    assert [(d.doc_id, d.title, d.text) for d in reading.documents] == [
        ("faq.csv#2", "Gift cards?", "Valid 24 months."),
        ("faq.csv#3", "Warranty?", "Two years on furniture."),
    ]
    [bad] = reading.skipped
    assert (bad.source, bad.line) == (str(path), 2) and "unclosed quote runs over lines 3-4" in bad.reason
    with pytest.raises(BadInput, match="faq.csv line 2: an unclosed quote"):  # the strict reader names it too
        list(iter_documents([str(path)]))


def test_an_unclosed_quote_ending_at_a_later_quoted_row_is_reported(write):
    path = write("faq.csv", 'question,answer\n"Q1","A1 never closed\nQ2,A2\n"Q3","A3"\n')
    reading = read_documents([str(path)])
    assert [d.title for d in reading.documents] == ["Q2", "Q3"] and [s.line for s in reading.skipped] == [2]


def test_a_quoted_answer_over_several_lines_is_still_one_row(write):
    path = write("faq.csv", 'question,answer\n"How do I return?","Step 1, pack it.\nStep 2, print the label."\nQ2,A2\n')
    reading = read_documents([str(path)])
    assert not reading.skipped
    assert [(d.doc_id, d.text) for d in reading.documents] == [
        ("faq.csv#1", "Step 1, pack it.\nStep 2, print the label."),
        ("faq.csv#2", "A2"),
    ]


def test_faq_rows_with_extra_fields_or_no_answer_are_reported_not_truncated(write):
    path = write("faq.csv", "question,answer\nQ1,Answer, with a comma\nQ2,A2\n,\nQ3,\n")
    reading = read_documents([str(path)])
    assert [d.doc_id for d in reading.documents] == ["faq.csv#2"]
    assert [(s.line, s.reason.split(";")[0]) for s in reading.skipped] == [
        (2, "3 fields but the header has 2"),
        (5, "no answer"),
    ]


def test_bad_jsonl_lines_are_reported_and_the_good_ones_kept(write):
    path = write("a.jsonl", '{"id": 1, "text": "ok"}\n{not json\n{"id": 3}\n{"id": 4, "text": "fine"}\n')
    reading = read_documents([str(path)])
    assert [d.doc_id for d in reading.documents] == ["1", "4"] and [s.line for s in reading.skipped] == [2, 3]


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog", "not a readable PDF"),
        ("junk.md", JUNK, "binary"),
        ("nul.txt", b"abc\x00def", "binary"),
        ("empty.txt", b"", "empty"),
        ("only-front-matter.md", "---\ntitle: T\n---\n", "no text"),
        ("no-columns.csv", "q,a\nx,y\n", "'question' and 'answer' columns"),
    ],
)
def test_one_bad_file_in_a_folder_is_reported_and_the_rest_read(write, tmp_path, name, content, reason):
    write("kb/good.md", "# Returns\nReturn items within 30 days.")
    write(f"kb/{name}", content)
    reading = read_documents([str(tmp_path / "kb")])
    assert [d.doc_id for d in reading.documents] == ["good.md"]
    [bad] = reading.skipped
    assert bad.source == str(tmp_path / "kb" / name) and bad.line is None
    assert reason in bad.reason and "\n" not in bad.reason


def test_a_file_that_cannot_be_opened_is_reported(write, tmp_path, monkeypatch):
    write("kb/good.md", "# Returns\nReturn items within 30 days.")
    locked = write("kb/locked.md", "# Secret\ntext")
    real = Path.read_bytes

    def read_bytes(self):  # chmod does not stop root, who runs the CI container
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    reading = read_documents([str(tmp_path / "kb")])
    assert [d.doc_id for d in reading.documents] == ["good.md"]
    assert [str(s) for s in reading.skipped] == [f"{locked}: unreadable (Permission denied); check its permissions"]


def test_a_missing_source_among_others_is_reported(write, tmp_path):
    write("kb/good.md", "# Returns\nReturn items within 30 days.")
    reading = read_documents([str(tmp_path / "kb"), str(tmp_path / "nope")])
    assert len(reading.documents) == 1 and "does not exist" in reading.skipped[0].reason
    with pytest.raises(NotFound):
        list(iter_documents([str(tmp_path / "kb"), str(tmp_path / "nope")]))


def _ingest(index, sources):
    reading = read_documents(sources)
    return index.ingest(reading.documents, 300, 50, skipped=reading.skipped)


def test_a_file_that_turns_unreadable_keeps_what_it_held_in_the_index(write, tmp_path):
    write("kb/returns.md", "---\nid: R\n---\n# Returns\nReturn items within 30 days.")
    shipping = write("kb/shipping.md", "---\nid: S\n---\n# Shipping\nDelivery costs 3.95 pounds.")
    faq = write("kb/faq.csv", "question,answer\nGift cards?,Valid 24 months.\nWarranty?,Two years.\n")
    index = KnowledgeIndex(tmp_path / "ix", HashEmbedder())
    assert _ingest(index, [str(tmp_path / "kb")]).documents == 4

    shipping.write_bytes(JUNK)  # a bad upload replaced it
    faq.write_text('question,answer\n"Gift cards?,Valid 24 months.\nWarranty?,Two years.\n')  # row 1 broken
    report = _ingest(index, [str(tmp_path / "kb")])
    assert (report.documents, report.removed) == (4, 0)
    assert [(Path(s.source).name, s.line) for s in report.skipped] == [("faq.csv", 2), ("shipping.md", None)]
    stored = KnowledgeIndex(tmp_path / "ix", HashEmbedder()).load()
    assert set(stored.manifest["documents"]) == {"R", "S", "faq.csv#1", "faq.csv#2"}
    assert report.to_json()["skipped"][1] == {
        "source": str(shipping),
        "line": None,
        "reason": "binary, not text; give Markdown, HTML, PDF, TXT, CSV or JSONL",
    }


def test_nothing_readable_is_bad_input_and_the_index_is_untouched(write, tmp_path):
    write("kb/returns.md", "# Returns\nReturn items within 30 days.")
    index = KnowledgeIndex(tmp_path / "ix", HashEmbedder())
    _ingest(index, [str(tmp_path / "kb")])
    before = (tmp_path / "ix" / "manifest.json").read_bytes()
    write("bad/junk.md", JUNK)
    with pytest.raises(BadInput, match=r"nothing could be read: 1 files or rows left out \(first: .*junk.md: binary"):
        index.ingest(
            read_documents([str(tmp_path / "bad")]).documents,
            300,
            50,
            rebuild=True,
            skipped=read_documents([str(tmp_path / "bad")]).skipped,
        )
    assert (tmp_path / "ix" / "manifest.json").read_bytes() == before and index.document_count() == 1


def test_an_index_path_that_is_a_file_is_bad_input(write, tmp_path):
    write("kb/returns.md", "# Returns\nReturn items within 30 days.")
    file = write("not-a-folder", "x")
    with pytest.raises(BadInput, match="is a file, not a folder"):
        _ingest(KnowledgeIndex(file, HashEmbedder()), [str(tmp_path / "kb")])
    with pytest.raises(BadInput, match="is under a file"):
        _ingest(KnowledgeIndex(file / "ix", HashEmbedder()), [str(tmp_path / "kb")])
    with pytest.raises(BadInput, match="is a file, not a folder"):
        KnowledgeIndex(file, HashEmbedder()).load()


# ---- the command line ----------------------------------------------------------------------------


@pytest.fixture
def chatbot(monkeypatch, tmp_path, capsys):
    """`chatbot ARGS...` in-process with the hash embedder: (exit code, stdout, stderr lines)."""
    import chatbot.builder

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHATBOT_CONFIG", raising=False)
    monkeypatch.setattr(chatbot.builder, "build_embedder", lambda config, progress=None: HashEmbedder())

    def run(*args):
        code = cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err.strip().splitlines()

    return run


def test_cli_ingest_reports_bad_files_in_json_and_exits_0(chatbot, write, tmp_path):
    write("kb/good.md", "# Returns\nReturn items within 30 days.")
    write("kb/broken.pdf", b"%PDF-1.4 truncated")
    write("kb/faq.csv", BROKEN_QUOTE_CSV)
    code, out, err = chatbot("ingest", tmp_path / "kb", "--index", tmp_path / "ix", "--json")
    assert code == 0
    result = json.loads(out)
    assert {"index", "documents", "chunks", "added", "updated", "unchanged", "removed", "embedded_chunks"} <= set(
        result
    )
    assert result["documents"] == 3
    assert [(Path(s["source"]).name, s["line"]) for s in result["skipped"]] == [("broken.pdf", None), ("faq.csv", 2)]
    assert any("skipped" in line and "broken.pdf: not a readable PDF" in line for line in err)


def test_cli_ingest_exits_2_with_one_line_when_nothing_could_be_read(chatbot, write, tmp_path):
    write("kb/junk.md", JUNK)
    code, out, err = chatbot("ingest", tmp_path / "kb", "--index", tmp_path / "ix", "--json")
    assert code == 2 and out == ""
    assert err[-1].startswith("chatbot: nothing could be read: 1 files or rows left out")
    assert not (tmp_path / "ix").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["ingest", "kb"],
        ["search", "returns?"],
        ["ask", "returns?"],
        ["eval", "--questions", "q.jsonl"],
        ["calibrate", "--questions", "q.jsonl"],
    ],
)
def test_every_command_given_a_file_as_index_says_so_in_one_line(chatbot, write, command):
    write("kb/good.md", "# Returns\nReturn items within 30 days.")
    write(
        "q.jsonl",
        "\n".join(
            json.dumps(
                {
                    "id": f"q{i}",
                    "question": "How long to return?",
                    "doc_ids": ["good.md"],
                    "answer_contains": ["30 days"],
                    "in_scope": True,
                    "split": "dev",
                }
            )
            for i in range(3)
        ),
    )
    write("index-file", "not a folder")
    code, out, err = chatbot(*command, "--index", "index-file")
    assert code == 2 and err == [
        "chatbot: the index path index-file is a file, not a folder; give --index a folder (it is created if missing)"
    ]


def test_the_installed_command_gives_no_traceback_for_an_index_that_is_a_file(repo_root, write, tmp_path):
    write("kb/good.md", "# Returns\nReturn items within 30 days.")
    file = write("index-file", "x")
    result = subprocess.run(
        [sys.executable, "-m", "chatbot", "ingest", str(tmp_path / "kb"), "--index", str(file)],
        capture_output=True,
        text=True,
        cwd=repo_root,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"chatbot: the index path {file} is a file, not a folder; give --index a folder (it is created if missing)"
    ]


# ---- the engine's upload verbs and the panel ---------------------------------------------------


@pytest.fixture
def pipeline(write, tmp_path):
    from chatbot.testing import ScriptedChatModel, scripted_pipeline
    from core.config import load_config

    write("kb/returns.md", "---\nid: R\ntitle: Returns\n---\nReturn items within 30 days.")
    embedder = HashEmbedder()
    index = KnowledgeIndex(tmp_path / "ix", embedder)
    index.ingest(iter_documents([str(tmp_path / "kb")]), 300, 50)
    config = load_config(None, {"chunking": {"max_chars": 300, "overlap_chars": 50}})
    return scripted_pipeline(config, index, ScriptedChatModel(""), f"sqlite:///{tmp_path}/db.sqlite")


def test_one_bad_upload_does_not_block_later_reindexes(pipeline, write, tmp_path):
    uploads = str(tmp_path / "uploads")
    bad = write("incoming/broken.pdf", b"%PDF-1.4 truncated")
    with pytest.raises(BadInput, match="nothing could be read"):
        pipeline.add_uploads(uploads, [str(bad)])
    good = write("incoming/gifts.md", "---\nid: G\ntitle: Gift cards\n---\nGift cards never expire.")
    said = []
    report = pipeline.add_uploads(uploads, [str(good)], progress=said.append)
    assert report.added == 1 and pipeline.document_count() == 2
    assert [Path(s.source).name for s in report.skipped] == ["broken.pdf"] and any("broken.pdf" in m for m in said)
    assert pipeline.searcher.search_documents("Do gift cards expire?", k=1)[0].doc_id == "G"
    with pytest.raises(BadInput, match="unsupported type"):
        pipeline.add_uploads(uploads, [str(write("incoming/x.docx", "x"))])


def test_uploads_are_listed_and_deleting_one_removes_its_documents_at_once(pipeline, write, tmp_path):
    uploads = str(tmp_path / "uploads")
    pipeline.add_uploads(
        uploads,
        [
            str(write("incoming/gifts.md", "---\nid: G\n---\nGift cards never expire.")),
            str(write("incoming/broken.pdf", b"%PDF-1.4 truncated")),
        ],
    )
    assert [(u.name, u.documents) for u in pipeline.uploads(uploads)] == [("broken.pdf", 0), ("gifts.md", 1)]
    assert pipeline.delete_upload(uploads, "gifts.md") == 1
    assert "G" not in KnowledgeIndex(tmp_path / "ix", HashEmbedder()).load().manifest["documents"]
    assert pipeline.document_count() == 1 and [u.name for u in pipeline.uploads(uploads)] == ["broken.pdf"]
    assert pipeline.delete_upload(uploads, "broken.pdf") == 0 and pipeline.uploads(uploads) == []
    with pytest.raises(NotFound, match="no upload named '../ix/manifest.json'; uploads: none"):
        pipeline.delete_upload(uploads, "../ix/manifest.json")
    assert (tmp_path / "ix" / "manifest.json").is_file()


def test_the_panel_lists_left_out_files_and_deletes_uploads(pipeline, write, tmp_path):
    from types import SimpleNamespace

    from ui.operator_events import PanelEvents

    on = PanelEvents(pipeline, str(tmp_path / "uploads"))
    admin = SimpleNamespace(username="operator")  # what Gradio passes: the signed-in session's user
    files = [
        str(write("gradio/gifts.md", "---\nid: G\n---\nGift cards never expire.")),
        str(write("gradio/broken.pdf", b"%PDF-1.4 truncated")),
    ]
    status, table, picker = on.reindex(files, request=admin, progress=lambda *a, **k: None)
    assert "Left out (1)" in status and "- broken\\.pdf: not a readable PDF" in status
    assert list(table["file"]) == ["broken.pdf", "gifts.md"] and list(table["documents"]) == ["not indexed", 1]
    assert picker["choices"] == ["broken.pdf", "gifts.md"]
    assert not any(Path(f).exists() for f in files)  # Gradio's temporary copies are gone
    status, table, _ = on.delete_upload("gifts.md", request=admin)
    assert status.startswith("Deleted gifts") and list(table["file"]) == ["broken.pdf"]
    assert pipeline.document_count() == 1
