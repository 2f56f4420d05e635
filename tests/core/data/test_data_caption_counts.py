"""Captions that are not there are counted, whatever form their absence takes (issue 27): a 0-byte or
whitespace-only caption file is a missing caption, and ``lumina data pack --missing-caption skip`` reports
the files it left out."""

from __future__ import annotations

import json

import pytest

from lumina_core.cli.main import main
from lumina_core.data.folder import list_pairs


def _folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b", "c", "d"):
        (src / f"{name}.png").write_bytes(b"not decoded by listing")
    (src / "a.txt").write_text("a red circle")
    (src / "b.txt").write_text("")  # 0 bytes
    (src / "c.txt").write_text("  \n\t\n")  # whitespace only
    return src  # d has no caption file at all


def test_blank_caption_files_are_missing_captions(tmp_path):
    from lumina_core.data.folder import is_blank_caption

    src = _folder(tmp_path)
    assert is_blank_caption(src / "b.txt") and is_blank_caption(src / "c.txt")
    assert not is_blank_caption(src / "a.txt")
    with pytest.raises(ValueError, match=r"3 file\(s\) .* no .txt caption \(2 of them an empty or blank .txt file\)"):
        list_pairs(src, "png")
    empty = list_pairs(src, "png", missing_caption="empty")
    assert [(p.key, p.caption()) for p in empty] == [("a", "a red circle"), ("b", ""), ("c", ""), ("d", "")]
    assert [p.name for p in empty.without_caption] == ["b.png", "c.png", "d.png"]
    skip = list_pairs(src, "png", missing_caption="skip")
    assert [p.key for p in skip] == ["a"] and len(skip.without_caption) == 3


def test_a_folder_dataset_with_missing_caption_error_refuses_an_empty_caption_file(tmp_path):
    pytest.importorskip("PIL")
    from lumina_core.data import build_dataset

    src = _folder(tmp_path)
    (src / "d.txt").write_text("a blue square")
    with pytest.raises(ValueError, match="2 of them an empty or blank"):
        build_dataset("image_folder", {"root": str(src), "missing_caption": "error"}, "train")


@pytest.mark.parametrize("mode,packed,skipped", [("skip", 1, 3), ("empty", 4, 0)])
def test_pack_counts_the_files_without_caption_it_skipped_or_packed_empty(tmp_path, capsys, mode, packed, skipped):
    src = _folder(tmp_path)
    out = tmp_path / "shards"
    assert main(["data", "pack", str(src), str(out), "--missing-caption", mode]) == 0
    said = capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_samples"] == packed and manifest["missing_captions"] == 3
    assert manifest["skipped_without_caption"] == skipped
    assert manifest["packed_without_caption"] == 3 - skipped
    assert sorted(manifest["missing_caption_keys"]) == ["b", "c", "d"]
    assert (f"{skipped} left out for want of a caption" in said) == bool(skipped)
