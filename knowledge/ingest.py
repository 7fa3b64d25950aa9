"""Read a help centre from files or folders into `Document`s.

Formats: Markdown (YAML front matter `id`, `title`, `url`), HTML, PDF, plain text, FAQ CSV
(`question`/`answer` columns, one document a row) and JSONL (`id` or `article_id`, `title`,
`text`, `url`). Markup noise (inline HTML, `{#anchor}`/`{.class}` attributes, images) is removed;
link text is kept. Headings stay as `#` lines so that chunking can follow them.

`read_documents` reads what it can and reports the rest as `Skipped` (file, line, one-line
reason): a truncated PDF, binary junk under a text name, an empty or unreadable file, a FAQ CSV
row with broken quoting (never merged into the rows after it), a bad JSONL line. `iter_documents`
is the strict form: the first such problem raises `BadInput`.

This module knows nothing about chunks, embeddings or indexes.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import BadInput, NotFound
from core.text import csv_value
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
_CONTROL_BYTES = bytes(c for c in range(32) if c not in (9, 10, 12, 13))  # not tab, newline, form feed, CR


@dataclass(frozen=True)
class Skipped:
    """A file, or one row of it, left out of an ingest; everything else is read as usual."""

    source: str  # the file (or the source given, when it does not exist)
    reason: str  # one line: what is wrong and what to do
    line: int | None = None  # the bad row's first line (FAQ CSV, JSONL); None when the whole file was left out

    def __str__(self) -> str:
        return f"{self.source}{f' line {self.line}' if self.line else ''}: {self.reason}"

    def to_json(self) -> dict:
        return {"source": self.source, "line": self.line, "reason": self.reason}


@dataclass(frozen=True)
class Reading:
    """What `read_documents` found: the documents, and the files and rows it had to leave out."""

    documents: tuple[Document, ...]
    skipped: tuple[Skipped, ...]


def read_documents(sources: list[str]) -> Reading:
    """Read every file and row of `sources` that can be read; report the others instead of failing.

    A truncated PDF, binary junk, an empty or unreadable file, a FAQ CSV row with broken quoting or
    a bad JSONL line each become one `Skipped` (file, line, reason); the rest is read as usual.
    """
    documents, skipped = [], []
    for item in _walk(sources, strict=False):
        (skipped if isinstance(item, Skipped) else documents).append(item)
    return Reading(tuple(documents), tuple(skipped))


def iter_documents(sources: list[str]) -> Iterator[Document]:
    """Yield the documents found in `sources` (files or folders, searched recursively).

    Strict: the first unreadable file or bad row raises `BadInput` (a missing source `NotFound`).
    `read_documents` reads the rest and reports them instead.
    """
    for item in _walk(sources, strict=True):
        if isinstance(item, Skipped):
            raise BadInput(str(item))
        yield item


def _walk(sources: list[str], strict: bool) -> Iterator[Document | Skipped]:
    if not sources:
        raise BadInput("give at least one file or folder to ingest")
    for source in sources:
        path = Path(source)
        if not path.exists():
            if strict:
                raise NotFound(f"{source} does not exist; give a help-centre file or folder")
            yield Skipped(source, "does not exist; give a help-centre file or folder")
            continue
        if path.is_dir():
            try:
                files = sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file()
                    and p.suffix.lower() in SUPPORTED
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                )
            except OSError as exc:
                if strict:
                    raise
                yield Skipped(source, f"folder unreadable ({exc.strerror or exc}); check its permissions")
                continue
            found = [(file, path) for file in files]
        elif path.suffix.lower() not in SUPPORTED:
            reason = f"unsupported file type '{path.suffix}'; supported: {', '.join(sorted(SUPPORTED))}"
            if strict:
                raise BadInput(f"{source}: {reason}")
            yield Skipped(source, reason)
            continue
        else:
            found = [(path, path.parent)]
        for file, root in found:
            try:
                items = list(read_file(file, root))  # whole, so that a file failing halfway adds nothing
            except BadInput as exc:
                items = [Skipped(str(file), str(exc))]
            except OSError as exc:  # permission denied, vanished meanwhile, a device error
                items = [Skipped(str(file), f"unreadable ({exc.strerror or exc}); check its permissions")]
            yield from items


def read_file(path: Path, root: Path) -> Iterator[Document | Skipped]:
    """Yield the document(s) in one file, and a `Skipped` per bad row of a FAQ CSV or JSONL file;
    `BadInput` (its message without the path) when the whole file is unusable. `root` makes the
    default doc_id a relative path."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise BadInput(f"{size // 2**20} MB, over the {MAX_FILE_BYTES // 2**20} MB limit; split it")
    if size == 0:
        raise BadInput("empty file; give one with help-centre text")
    rel = path.relative_to(root).as_posix() if path != root else path.name
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        text = _read_pdf(path)
        yield _document(rel, _title_from(text, path), "", text, path, root)
        return
    raw = _read_text(path)
    if suffix in MARKDOWN:
        meta, body = split_front_matter(raw)
        text = _non_empty(clean_markdown(body))
        title = str(meta.get("title") or _title_from(text, path))
        yield _document(str(meta.get("id") or rel), title, str(meta.get("url") or ""), text, path, root)
    elif suffix in HTML:
        title, text = html_to_text(raw)
        text = _non_empty(text)
        yield _document(rel, title or _title_from(text, path), "", text, path, root)
    elif suffix in TEXT:
        text = _non_empty(raw.strip())
        yield _document(rel, _title_from(text, path), "", text, path, root)
    elif suffix == ".csv":
        yield from _read_faq_csv(raw, rel, path, root)
    elif suffix == ".jsonl":
        yield from _read_jsonl(raw, rel, path, root)


def _non_empty(text: str) -> str:
    if not text.strip():
        raise BadInput("no text once markup is removed; give a file with help-centre text")
    return text


def split_front_matter(raw: str) -> tuple[dict, str]:
    match = _FRONT_MATTER.match(raw)
    if not match:
        return {}, raw
    import yaml  # only Markdown with front matter needs it

    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError:
        meta = {}
    return (meta if isinstance(meta, dict) else {}), raw[match.end() :]


def clean_markdown(text: str) -> str:
    """Markdown with inline HTML and attribute syntax reduced to plain Markdown-ish text."""
    text = _HTML_COMMENT.sub("", text)
    text = _HTML_HEADING.sub(
        lambda m: "\n" + "#" * int(m.group(1)) + " " + _strip_tags(m.group(2)).strip() + "\n", text
    )
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
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 with its byte-order mark (Windows "Unicode")
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    # NUL never occurs in text; many C0 control bytes mean random bytes under a text name
    controls = len(data) - len(data.translate(None, _CONTROL_BYTES))
    if b"\x00" in data or controls > len(data) * 0.05:
        raise BadInput("binary, not text; give Markdown, HTML, PDF, TXT, CSV or JSONL")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _one_line(text: object, limit: int = 200) -> str:
    return " ".join(str(text).split())[:limit]


def _read_pdf(path: Path) -> str:
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.CRITICAL)  # its warnings repeat what we raise

    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # noqa: BLE001 - a damaged PDF makes pypdf raise nearly any type
        raise BadInput(
            f"not a readable PDF ({_one_line(exc) or type(exc).__name__}); re-export it or give the text"
        ) from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise BadInput("no extractable text (a scanned PDF?); give a text version")
    return text


def _read_faq_csv(raw: str, rel: str, path: Path, root: Path) -> Iterator[Document | Skipped]:
    """One document per row; a row with broken quoting is reported, never merged with the rows after it.

    Rows are parsed strictly: an unclosed quote that runs over the next lines (to the end of the
    file, or to a quote that then breaks the format) makes that row a `Skipped` naming its line, and
    the lines it swallowed are read again as rows of their own. A row's number (its default doc id
    `FILE#N`) counts the bad rows too, so the rows after a broken one keep the ids a fixed file gives.
    """
    lines = io.StringIO(raw, newline="").readlines()
    header_reader = csv.reader(lines)
    header = next(header_reader, [])
    columns = {c.strip().lower(): c for c in header}
    if "question" not in columns or "answer" not in columns:
        raise BadInput(f"a FAQ CSV needs 'question' and 'answer' columns, found {header}")
    position = header_reader.line_num  # 0-based index of the next line to parse
    number = 0
    while position < len(lines):
        reader = csv.reader(lines[position:], strict=True)
        restart = None
        while restart is None:
            before = reader.line_num
            first = position + before  # 0-based index of this record's first line
            try:
                fields = next(reader)
            except StopIteration:
                restart = len(lines)
                break
            except csv.Error as exc:
                spanned = reader.line_num - before
                single = csv.reader([lines[first]]) if spanned <= 1 else None
                fields = next(single, None) if single is not None else None
                if fields is None or len(fields) > len(header):  # an unclosed quote swallowed the lines after it
                    number += 1
                    swallowed = f"line {first + 2}" if spanned == 2 else f"lines {first + 2}-{first + spanned}"
                    runs = (
                        f"an unclosed quote runs over {swallowed}"
                        if spanned > 1
                        else f"broken quoting ({_one_line(exc)})"
                    )
                    yield Skipped(
                        str(path),
                        f'{runs}; close it or double quotes inside a field (""); '
                        "the lines after it are read as rows of their own",
                        first + 1,
                    )
                    restart = first + 1
                    break
                restart = first + 1  # one line with a stray quote: read leniently, as a spreadsheet would
            if not fields:
                continue  # a blank line
            number += 1
            item = _faq_row(fields, header, columns, f"{rel}#{number}", path, root, first + 1)
            if item is not None:
                yield item
        position = restart


def _faq_row(
    fields: list[str], header: list[str], columns: dict[str, str], default_id: str, path: Path, root: Path, line: int
) -> Document | Skipped | None:
    """The document of one parsed FAQ CSV row, a `Skipped` saying what is wrong with it, or None for an empty row."""
    if len(fields) > len(header):
        return Skipped(
            str(path), f"{len(fields)} fields but the header has {len(header)}; quote fields that contain commas", line
        )
    row = {name: csv_value(value) for name, value in zip(header, fields)}  # `'=` as written: =
    question = (row.get(columns["question"]) or "").strip()
    answer = (row.get(columns["answer"]) or "").strip()
    if not question and not answer:
        return None  # an empty row (a spreadsheet's trailing commas)
    if not question or not answer:
        missing = "question" if not question else "answer"
        return Skipped(str(path), f"no {missing}; fill it in or remove the row", line)
    doc_id = (row.get(columns["id"]) or "").strip() if "id" in columns else ""
    url = (row.get(columns["url"]) or "").strip() if "url" in columns else ""
    return _document(doc_id or default_id, question, url, answer, path, root)


def _read_jsonl(raw: str, rel: str, path: Path, root: Path) -> Iterator[Document | Skipped]:
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Skipped(str(path), f"not valid JSON ({exc.msg}); fix or remove the line", number)
            continue
        if not isinstance(record, dict) or not str(record.get("text") or "").strip():
            yield Skipped(str(path), "needs an object with a non-empty 'text' field; fix or remove the line", number)
            continue
        doc_id = record.get("id", record.get("article_id"))
        text = clean_markdown(str(record["text"]))
        title = str(record.get("title") or _title_from(text, path))
        yield _document(
            str(doc_id) if doc_id is not None else f"{rel}#{number}",
            title,
            str(record.get("url") or ""),
            text,
            path,
            root,
        )


def _title_from(text: str, path: Path) -> str:
    heading = re.search(r"^#{1,6} (.+)$", text, re.M)
    if heading:
        return heading.group(1).strip()
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:120]
    return path.stem


def _document(doc_id: str, title: str, url: str, text: str, path: Path, root: Path) -> Document:
    return Document(doc_id=doc_id, title=title.strip(), url=url, text=text, source=str(path), root=str(root.resolve()))
