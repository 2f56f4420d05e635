"""One skip-and-count policy, applied by the core when it builds a dataset (issue #13)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from lumina_core.data import Checker, LuminaDataset, LuminaStream, build_dataset, collate_items
from lumina_core.data.robust import CorruptSampleError, SkipCorrupt, SkipStats, corrupt_on, skip_report
from lumina_core.registry import DATASETS


class _Files(Checker, LuminaDataset):
    """Eight 'files'; the ones in ``bad`` fail to decode the way PIL and soundfile fail (OSError)."""

    modality = "test"
    condition_kind = "text"

    def __init__(self, bad: tuple[int, ...] = (2, 3), n: int = 8, split: str = "train") -> None:
        super().__init__(split)
        self.bad, self.n = set(bad), n

    def __len__(self) -> int:
        return self.n

    def item_name(self, i: int) -> str:
        return f"file_{i}.png"

    def __getitem__(self, i: int) -> dict:
        with corrupt_on((OSError,), self.item_name(i)):
            if i in self.bad:
                raise OSError("image file is truncated")
            return {"sample": torch.full((2,), float(i)), "condition": f"caption {i}", "meta": {"i": i}}

    def score(self, samples, items) -> dict[str, float]:
        return {"adherence": 1.0}


class _OwnLoop(_Files):
    """A dataset that still counts its own skips (as ``multiview_folder`` does today)."""

    def __init__(self, split: str = "train") -> None:
        super().__init__(split=split)
        self.stats = SkipStats()


class _Stream(LuminaStream):
    modality = "test"
    condition_kind = "none"

    def __init__(self, split: str = "train") -> None:
        self.split = split

    def __iter__(self):
        yield {"sample": torch.zeros(2), "condition": None, "meta": {}}


@pytest.fixture(autouse=True)
def _registered():
    names = {"skip_policy_files": _Files, "skip_policy_own": _OwnLoop, "skip_policy_stream": _Stream}
    for name, cls in names.items():
        DATASETS.register(name, override=True)(cls)
    yield
    for name in names:
        DATASETS.unregister(name)


def test_build_dataset_applies_the_policy_to_map_style_datasets():
    ds = build_dataset("skip_policy_files", {}, "train")
    assert isinstance(ds, SkipCorrupt) and isinstance(ds.dataset, _Files)
    # the dataset's own API is forwarded through the wrapper
    assert ds.condition_kind == "text" and ds.score([], []) == {"adherence": 1.0} and len(ds) == 8
    got = [ds[i]["meta"]["i"] for i in range(8)]
    assert got == [0, 1, 4, 4, 4, 5, 6, 7]  # 2 and 3 replaced by the next readable item: batches keep size
    assert ds.skipped == 2 and ds.skipped_names == ["file_2.png", "file_3.png"]
    assert "OSError: image file is truncated" in ds.stats.reasons[0]
    # a second pass reads no known-bad file again and counts nothing twice
    [ds[i] for i in range(8)]
    assert ds.skipped == 2 and skip_report(ds)["skipped"] == 2


def test_the_policy_across_dataloader_workers():
    ds = build_dataset("skip_policy_files", {}, "train")
    batches = list(DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_items))
    assert [len(b["samples"]) for b in batches] == [4, 4]
    assert ds.skipped == 2  # counted in the workers, visible here


def test_out_of_range_and_all_unreadable_are_errors_not_skips():
    ds = build_dataset("skip_policy_files", {"bad": tuple(range(8))}, "train")
    with pytest.raises(IndexError):
        ds[8]
    with pytest.raises(CorruptSampleError, match="none of the 8 items"):
        ds[0]
    assert ds.skipped == 8


def test_a_dataset_that_counts_itself_and_streams_are_left_alone():
    assert isinstance(build_dataset("skip_policy_own", {}, "train"), _OwnLoop)
    assert isinstance(build_dataset("skip_policy_stream", {}, "train"), _Stream)


def test_plugin_folder_datasets_raise_and_the_core_skips(tmp_path):
    """image_folder and audio_folder no longer carry their own skip loops: read directly, a corrupt file is
    a CorruptSampleError naming it; built by the core, it is skipped and counted the same way for both."""
    import numpy as np
    import soundfile as sf
    from PIL import Image

    pytest.importorskip("lumina_modalities.image")
    images, clips = tmp_path / "images", tmp_path / "clips"
    images.mkdir()
    clips.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(images / f"i{i}.png")
        (images / f"i{i}.txt").write_text(f"image {i}")
        sf.write(clips / f"c{i}.wav", np.sin(np.arange(2205) * 0.1 * (i + 1)).astype(np.float32), 22050)
        (clips / f"c{i}.txt").write_text(f"clip {i}")
    (images / "i1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (clips / "c1.wav").write_bytes(b"RIFF garbage")
    for name, params, raw in (
        ("image_folder", {"root": str(images), "size": 8}, "i1.png"),
        ("audio_folder", {"root": str(clips)}, "c1.wav"),
    ):
        factory = DATASETS.get(name)
        with pytest.raises(CorruptSampleError, match=raw):
            factory(**params)[1]
        ds = build_dataset(name, params, "train")
        conditions = [ds[i]["condition"] for i in range(3)]
        assert conditions[1] == conditions[2] and ds.skipped == 1, (name, conditions)
        assert ds.skipped_names[0].endswith(raw) and "skipped 1 of" in ds.summary()
