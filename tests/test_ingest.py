import json

import pytest

from core.errors import BadInput, NotFound
from knowledge.ingest import clean_markdown, iter_documents


def make_pdf(text: str) -> bytes:
    """A minimal one-page PDF with `text` in Helvetica, written by hand (no PDF library needed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


def test_markdown_front_matter_gives_id_title_url_and_markup_noise_is_removed(write, tmp_path):
    write(
        "kb/returns/return-an-item.md",
        """---
id: LO-1
title: Return an item
url: https://help.example/LO-1
---
You can <strong>return</strong> items.<br>

## Refund timing {#refund-timing}
Use the [Returns portal](https://example/returns){.link-external} now.
![Screenshot of the page](images/x.png)
""",
    )
    [doc] = list(iter_documents([str(tmp_path / "kb")]))
    assert (doc.doc_id, doc.title, doc.url) == ("LO-1", "Return an item", "https://help.example/LO-1")
    assert "<strong>" not in doc.text and "{#" not in doc.text and "{." not in doc.text
    assert "Screenshot" not in doc.text and "images/x.png" not in doc.text
    assert "Use the Returns portal now." in doc.text  # link text kept, url dropped
    assert "## Refund timing" in doc.text


def test_doc_id_defaults_to_path_relative_to_the_ingested_root(write, tmp_path):
    write("kb/a/b.md", "# Title\nbody text")
    [doc] = list(iter_documents([str(tmp_path / "kb")]))
    assert doc.doc_id == "a/b.md" and doc.title == "Title"


def test_html_headings_survive_and_scripts_go(write):
    path = write(
        "page.html",
        "<html><head><title>Ship</title><script>var x=1</script></head>"
        "<body><nav>menu</nav><h2>Costs</h2><p>Standard is &pound;3.95.</p></body></html>",
    )
    [doc] = list(iter_documents([str(path)]))
    assert doc.title == "Ship"
    assert "## Costs" in doc.text and "£3.95" in doc.text and "var x" not in doc.text and "menu" not in doc.text


def test_pdf_text_is_extracted(write):
    path = write("policy.pdf", make_pdf("Refunds take five business days."))
    [doc] = list(iter_documents([str(path)]))
    assert "Refunds take five business days." in doc.text


def test_corrupt_pdf_is_a_clear_error(write):
    path = write("broken.pdf", b"%PDF-1.4 this is not a pdf")
    with pytest.raises(BadInput, match="not a readable PDF|no extractable text"):
        list(iter_documents([str(path)]))


def test_faq_csv_rows_become_documents(write):
    path = write(
        "faq.csv", 'question,answer\n"Do you ship to Canada?","Not yet, sorry."\n"Gift cards?","Valid 24 months."\n'
    )
    docs = list(iter_documents([str(path)]))
    assert [d.title for d in docs] == ["Do you ship to Canada?", "Gift cards?"]
    assert docs[0].doc_id == "faq.csv#1" and docs[1].text == "Valid 24 months."


def test_faq_csv_without_the_columns_is_refused(write):
    path = write("faq.csv", "q,a\nx,y\n")
    with pytest.raises(BadInput, match="question"):
        list(iter_documents([str(path)]))


def test_jsonl_accepts_id_or_article_id(write):
    lines = [{"article_id": 42, "title": "T", "text": "Body <b>bold</b>", "url": "u"}, {"id": "x", "text": "Other"}]
    path = write("a.jsonl", "\n".join(json.dumps(x) for x in lines))
    docs = list(iter_documents([str(path)]))
    assert [d.doc_id for d in docs] == ["42", "x"] and docs[0].text == "Body bold"


def test_bad_jsonl_line_names_the_line(write):
    path = write("a.jsonl", '{"id": 1, "text": "ok"}\n{not json\n')
    with pytest.raises(BadInput, match="line 2"):
        list(iter_documents([str(path)]))


def test_missing_path_and_unsupported_type_are_clear(write, tmp_path):
    with pytest.raises(NotFound, match="does not exist"):
        list(iter_documents([str(tmp_path / "nope")]))
    path = write("x.docx", "x")
    with pytest.raises(BadInput, match="unsupported file type"):
        list(iter_documents([str(path)]))


def test_binary_file_with_text_extension_is_refused(write):
    path = write("x.txt", b"\x00\x01\x02\xff\xfe" * 100)
    with pytest.raises(BadInput, match="binary"):
        list(iter_documents([str(path)]))


def test_html_headings_inside_markdown_become_markdown_headings():
    assert clean_markdown('<h2 class="hub">General</h2>\n<div>Text</div>').splitlines()[0] == "## General"
