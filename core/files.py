"""Write files and folders so that a reader sees the old version or the new one, never half of one.

Everything is written under a temporary name beside the target (`.NAME.tmpPID`, same file system)
and renamed over it once complete; a writer that fails or is interrupted leaves the previous
version in place and removes its temporary. The one way this project replaces what it wrote.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def replacing(*paths: str | Path) -> Iterator[list[Path]]:
    """Yield a temporary path for each of `paths`; on success rename them over `paths`, in order.

    Order matters to readers that look at one file to decide the rest is there: name it last.
    On an exception the temporaries are removed and the targets are left as they were.
    """
    targets = [Path(p) for p in paths]
    temporaries = [_temporary(p) for p in targets]
    for target, tmp in zip(targets, temporaries):
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
    try:
        yield temporaries
    except BaseException:
        for tmp in temporaries:
            _remove(tmp)
        raise
    for target, tmp in zip(targets, temporaries):
        os.replace(tmp, target)


def write_atomic(path: str | Path, data: bytes | str, encoding: str = "utf-8") -> Path:
    """Write `data` (text in `encoding`, or bytes) to `path` through a temporary file; returns `path`."""
    with replacing(path) as (tmp,):
        if isinstance(data, str):
            tmp.write_text(data, encoding=encoding)
        else:
            tmp.write_bytes(data)
    return Path(path)


def build_folder_atomic(
    target: str | Path, build: Callable[[Path], None], existing: Literal["replace", "keep", "backup"] = "replace"
) -> Path:
    """Run `build(folder)` into an empty temporary folder, then rename it to `target`; returns `target`.

    `existing` says what happens to a `target` already there: "replace" removes it, "keep" leaves it
    and discards the new build (another process finished first), "backup" renames it to
    `TARGET.previous` (dropping an older one). A `build` that raises leaves `target` untouched.
    """
    target = Path(target)
    tmp = _temporary(target)
    _remove(tmp)
    tmp.mkdir(parents=True)
    try:
        build(tmp)
    except BaseException:
        _remove(tmp)
        raise
    if existing == "keep":
        try:
            os.replace(tmp, target)  # fails when target is a folder with files in it
        except OSError:
            _remove(tmp)
        return target
    if target.exists() or target.is_symlink():
        aside = (
            target.with_name(f"{target.name}.previous")
            if existing == "backup"
            else target.with_name(f".{target.name}.old{os.getpid()}")
        )
        _remove(aside)
        os.replace(target, aside)
        os.replace(tmp, target)
        if existing != "backup":
            _remove(aside)
    else:
        os.replace(tmp, target)
    return target
