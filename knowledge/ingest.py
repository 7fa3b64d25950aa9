"""Read a help centre from files or folders into `Document`s.

Formats: Markdown (YAML front matter `id`, `title`, `url`), HTML, PDF, plain text, FAQ CSV
(`question`/`answer` columns, one document a row) and JSONL (`id` or `article_id`, `title`,
`text`, `url`). Markup noise (inline HTML, `{#anchor}`/`{.class}` attributes, images) is removed;
link text is kept. Headings stay as `#` lines so that chunking can follow them.

This module knows nothing about chunks, embeddings or indexes.
"""

from __future__ import annotations

import csv
import html
import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

from core.errors import BadInput, NotFound
from core.jsonl import jsonl_records
from knowledge.types import Document

MAX_FILE_BYTES = 50 * 1024 * 1024
MARKDOWN = {".md", ".markdown", ".mdx"}
HTML = {".html", ".htm"}
TEXT = {".txt", ".text", ".rst"}
SUPPORTED = MARKDOWN | HTML | TEXT | {".pdf", ".csv", ".jsonl"}

_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.S)
_ATTRIBUTES = re.compile(r"\s*\{[#.][^{}\n]*\}")  # {#anchor} {.link-external} {.a .b}
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_HTML_HEADING = re.compile(r"<h([1-6])[^>]*>(.*?)</h\1\s*>", re.S | re.I)
_HTML_BLOCK_END = re.compile(r"<\s*(br|/p|/div|/li|/tr|/h[1-6]|/figure|/figcaption|hr)\b[^>]*>", re.I)
_HTML_CELL = re.compile(r"<\s*/?t[dh]\b[^>]*>", re.I)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_BLANK_LINES = re.compile(r"\n{3,}")


def iter_documents(sources: list[str]) -> Iterator[Document]:
    """Yield the documents found in `sources` (files or folders, searched recursively)."""
    if not sources:
        raise BadInput("give at least one file or folder to ingest")
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise NotFound(f"{source} does not exist; give a help-centre file or folder")
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in SUPPORTED
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            for file in files:
                yield from read_file(file, root=path)
        else:
            if path.suffix.lower() not in SUPPORTED:
                raise BadInput(
                    f"{source}: unsupported file type '{path.suffix}'; "
                    f"supported: {', '.join(sorted(SUPPORTED))}"
                )
            yield from read_file(path, root=path.parent)


def read_file(path: Path, root: Path) -> Iterator[Document]:
    """Yield the document(s) in one file; `root` makes the default doc_id a relative path."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise BadInput(f"{path} is {size // 2**20} MB; split files over {MAX_FILE_BYTES // 2**20} MB")
    rel = path.relative_to(root).as_posix() if path != root else path.name
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        text = _read_pdf(path)
        yield _document(rel, _title_from(text, path), "", text, path, root)
        return
    raw = _read_text(path)
    if suffix in MARKDOWN:
        meta, body = split_front_matter(raw)
        text = clean_markdown(body)
        title = str(meta.get("title") or _title_from(text, path))
        yield _document(str(meta.get("id") or rel), title, str(meta.get("url") or ""), text, path, root)
    elif suffix in HTML:
        title, text = html_to_text(raw)
        yield _document(rel, title or _title_from(text, path), "", text, path, root)
    elif suffix in TEXT:
        yield _document(rel, _title_from(raw, path), "", raw.strip(), path, root)
    elif suffix == ".csv":
        yield from _read_faq_csv(raw, rel, path, root)
    elif suffix == ".jsonl":
        yield from _read_jsonl(raw, rel, path, root)


def split_front_matter(raw: str) -> tuple[dict, str]:
    match = _FRONT_MATTER.match(raw)
    if not match:
        return {}, raw
    import yaml  # only Markdown with front matter needs it

    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError:
        meta = {}
    return (meta if isinstance(meta, dict) else {}), raw[match.end():]


def clean_markdown(text: str) -> str:
    """Markdown with inline HTML and attribute syntax reduced to plain Markdown-ish text."""
    text = _HTML_COMMENT.sub("", text)
    text = _HTML_HEADING.sub(lambda m: "\n" + "#" * int(m.group(1)) + " " + _strip_tags(m.group(2)).strip() + "\n", text)
    text = _HTML_CELL.sub(" ", text)
    text = _HTML_BLOCK_END.sub("\n", text)
    text = _HTML_TAG.sub("", text)
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _ATTRIBUTES.sub("", text)
    text = html.unescape(text)
    lines = [line.rstrip() for line in text.splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def html_to_text(raw: str) -> tuple[str, str]:
    """(title, text) of an HTML page; headings become '#' lines, scripts and navigation go."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(raw, "html.parser")
    for tag in soup(["script", "style", "nav", "header", "footer", "noscript", "svg", "form"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    body = soup.body or soup
    for level in range(1, 7):
        for heading in body.find_all(f"h{level}"):
            heading.replace_with(f"\n{'#' * level} {heading.get_text(' ', strip=True)}\n")
    for br in body.find_all("br"):
        br.replace_with("\n")
    text = body.get_text("\n")
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    if not title:
        first = re.search(r"^# (.+)$", text, re.M)
        title = first.group(1) if first else ""
    return title, text


def _strip_tags(text: str) -> str:
    return _HTML_TAG.sub("", text)


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        if b"\x00" in data[:4096]:
            raise BadInput(f"{path} looks binary, not text; give Markdown, HTML, PDF, TXT, CSV or JSONL") from None
        return data.decode("latin-1")


def _read_pdf(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.CRITICAL)  # its warnings repeat what we raise

    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, OSError, KeyError) as exc:
        raise BadInput(f"{path} is not a readable PDF ({exc}); re-export it or give the text") from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise BadInput(f"{path} has no extractable text (a scanned PDF?); give a text version")
    return text


def _read_faq_csv(raw: str, rel: str, path: Path, root: Path) -> Iterator[Document]:
    reader = csv.DictReader(io.StringIO(raw))
    columns = {c.strip().lower(): c for c in (reader.fieldnames or [])}
    if "question" not in columns or "answer" not in columns:
        raise BadInput(f"{path}: a FAQ CSV needs 'question' and 'answer' columns, found {reader.fieldnames}")
    for number, row in enumerate(reader, start=1):
        question = (row.get(columns["question"]) or "").strip()
        answer = (row.get(columns["answer"]) or "").strip()
        if not question or not answer:
            continue
        doc_id = (row.get(columns["id"]) or "").strip() if "id" in columns else ""
        url = (row.get(columns["url"]) or "").strip() if "url" in columns else ""
        yield _document(doc_id or f"{rel}#{number}", question, url, answer, path, root)


def _read_jsonl(raw: str, rel: str, path: Path, root: Path) -> Iterator[Document]:
    for number, record in jsonl_records(raw.splitlines(), path):
        if not isinstance(record, dict) or not str(record.get("text") or "").strip():
            raise BadInput(f"{path} line {number} needs an object with a non-empty 'text' field")
        doc_id = record.get("id", record.get("article_id"))
        text = clean_markdown(str(record["text"]))
        title = str(record.get("title") or _title_from(text, path))
        yield _document(str(doc_id) if doc_id is not None else f"{rel}#{number}", title,
                        str(record.get("url") or ""), text, path, root)


def _title_from(text: str, path: Path) -> str:
    heading = re.search(r"^#{1,6} (.+)$", text, re.M)
    if heading:
        return heading.group(1).strip()
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:120]
    return path.stem


def _document(doc_id: str, title: str, url: str, text: str, path: Path, root: Path) -> Document:
    return Document(doc_id=doc_id, title=title.strip(), url=url, text=text, source=str(path),
                    root=str(root.resolve()))
