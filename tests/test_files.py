import pytest

from core.files import build_folder_atomic, replacing, write_atomic


def test_write_atomic_writes_text_or_bytes_and_leaves_no_temporary(tmp_path):
    path = write_atomic(tmp_path / "sub" / "a.json", "é\n")
    assert path.read_text(encoding="utf-8") == "é\n"
    write_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01" and [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_a_failed_write_keeps_the_old_files_and_removes_the_temporaries(tmp_path):
    (tmp_path / "a").write_text("old a")
    with pytest.raises(RuntimeError), replacing(tmp_path / "a", tmp_path / "b") as (a, b):
        a.write_text("new a")
        raise RuntimeError("interrupted")
    assert (tmp_path / "a").read_text() == "old a" and sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    with replacing(tmp_path / "a", tmp_path / "b") as (a, b):
        a.write_text("new a")
        b.write_text("new b")
    assert (tmp_path / "a").read_text() == "new a" and (tmp_path / "b").read_text() == "new b"


def _writes(text):
    return lambda folder: (folder / "f").write_text(text)


def test_build_folder_atomic_replaces_keeps_or_backs_up_what_is_there(tmp_path):
    target = tmp_path / "model"
    build_folder_atomic(target, _writes("1"))
    build_folder_atomic(target, _writes("2"))
    assert (target / "f").read_text() == "2"
    build_folder_atomic(target, _writes("3"), existing="keep")  # another process finished first
    assert (target / "f").read_text() == "2"
    build_folder_atomic(target, _writes("4"), existing="backup")
    assert (target / "f").read_text() == "4" and (tmp_path / "model.previous" / "f").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "model.previous"]


def test_a_failed_build_leaves_the_target_untouched(tmp_path):
    target = tmp_path / "model"
    build_folder_atomic(target, _writes("1"))

    def broken(folder):
        (folder / "f").write_text("half")
        raise ValueError("no")

    with pytest.raises(ValueError):
        build_folder_atomic(target, broken)
    assert (target / "f").read_text() == "1" and [p.name for p in tmp_path.iterdir()] == ["model"]
