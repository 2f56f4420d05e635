"""Listing a user's folder of FILE.<ext> + FILE.txt pairs."""

from __future__ import annotations

import pytest

from lumina_core.data.folder import list_pairs, read_caption


def _touch(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_lists_pairs_sorted_with_captions_and_side_files(tmp_path):
    _touch(tmp_path / "b.png")
    _touch(tmp_path / "b.txt", "  a blue square \n")
    _touch(tmp_path / "a.PNG")
    _touch(tmp_path / "a.txt", "a red circle")
    _touch(tmp_path / "a.json", '{"x": 1}')
    _touch(tmp_path / "a.cls", "3")
    _touch(tmp_path / "sub" / "c.wav")
    _touch(tmp_path / "sub" / "c.txt", "a tone")
    _touch(tmp_path / ".hidden" / "d.png")
    _touch(tmp_path / "notes.md", "ignored: not a data extension")
    pairs = list_pairs(tmp_path, extensions=["png", ".wav"])
    assert [p.key for p in pairs] == ["a", "b", "sub/c"]
    assert [p.caption() for p in pairs] == ["a red circle", "a blue square", "a tone"]
    assert pairs[0].ext == "png" and pairs[2].ext == "wav"
    assert set(pairs[0].extras) == {"json", "cls"} and pairs[1].extras == {}
    assert [p.key for p in list_pairs(tmp_path, "png", recursive=False)] == ["a", "b"]


def test_missing_captions(tmp_path):
    for name in ["x", "y", "z"]:
        _touch(tmp_path / f"{name}.png")
    _touch(tmp_path / "x.txt", "has one")
    with pytest.raises(ValueError, match=r"2 file\(s\) .* no .txt caption: y.png, z.png"):
        list_pairs(tmp_path, "png")
    empty = list_pairs(tmp_path, "png", missing_caption="empty")
    assert [(p.key, p.caption()) for p in empty] == [("x", "has one"), ("y", ""), ("z", "")]
    assert [p.key for p in list_pairs(tmp_path, "png", missing_caption="skip")] == ["x"]
    with pytest.raises(ValueError, match="missing_caption"):
        list_pairs(tmp_path, "png", missing_caption="maybe")


def test_empty_and_absent_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_pairs(tmp_path / "nope")
    with pytest.raises(ValueError, match="no data files"):
        list_pairs(tmp_path)
    _touch(tmp_path / "only.txt", "a caption with no image")
    with pytest.raises(ValueError, match="no data files"):
        list_pairs(tmp_path, "png")


def test_ambiguous_stem_and_bad_extensions(tmp_path):
    _touch(tmp_path / "a.png")
    _touch(tmp_path / "a.jpg")
    _touch(tmp_path / "a.txt", "x")
    with pytest.raises(ValueError, match="more than one data file"):
        list_pairs(tmp_path, ["png", "jpg"])
    with pytest.raises(ValueError, match="overlap"):
        list_pairs(tmp_path, ["png", "txt"])


def test_caption_must_be_utf8(tmp_path):
    bad = tmp_path / "a.txt"
    bad.write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_caption(bad)
