"""The folder of help-centre files that operators upload: copy in, list, delete.

Each upload is a plain file in one folder (no sub-folders); the index is re-read from that folder,
so one bad upload is reported and left out (`knowledge.ingest.read_documents`) while the others
are indexed. Deleting an upload removes its documents from the index at once.

Knows nothing about Gradio or HTTP: the engine's verbs (`Pipeline.add_uploads`, `uploads`,
`delete_upload`) call it and the panel shows what they return.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from core.errors import BadInput, NotFound
from knowledge.index import KnowledgeIndex
from knowledge.ingest import SUPPORTED


@dataclass(frozen=True)
class UploadedFile:
    name: str  # file name inside the uploads folder
    size_bytes: int
    modified_s: float  # last change, seconds since the epoch
    documents: int  # documents the index holds from it; 0: not indexed (yet, or unreadable)


def save_uploads(folder: str | Path, files: list[str | Path]) -> list[str]:
    """Copy `files` into `folder` under their own names (a same-named upload is replaced); returns
    the names. Nothing is copied when one has an unsupported type (`BadInput` listing the types)."""
    names = [Path(f).name for f in files]
    for name in names:
        _check_name(name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for file, name in zip(files, names):
        shutil.copyfile(file, folder / name)
    return names


def list_uploads(folder: str | Path, index: KnowledgeIndex) -> list[UploadedFile]:
    """The uploads in `folder`, by name, each with the number of documents the index holds from it."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        stat = path.stat()
        out.append(UploadedFile(path.name, stat.st_size, stat.st_mtime, len(index.documents_from(path))))
    return out


def delete_upload(folder: str | Path, name: str, index: KnowledgeIndex) -> int:
    """Delete upload `name` and remove its documents from the index now; returns how many went.
    `NotFound` listing the uploads when there is no such file."""
    folder = Path(folder)
    path = folder / Path(name or "").name  # a bare name: never a path out of the folder
    if not name or path.name != name or not path.is_file() or name.startswith("."):
        present = [u.name for u in list_uploads(folder, index)]
        raise NotFound(f"no upload named '{name}'; uploads: {', '.join(present) or 'none'}")
    path.unlink()
    return index.forget([path])


def _check_name(name: str) -> None:
    if not name or name.startswith("."):
        raise BadInput(f"'{name}' is not a usable file name; rename the file")
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED:
        raise BadInput(f"{name}: unsupported type '{suffix}'; supported: {', '.join(sorted(SUPPORTED))}")
