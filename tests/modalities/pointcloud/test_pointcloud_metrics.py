"""Point-cloud metrics on configurations with known answers, and the pytorch3d -> torch fallback."""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest
import torch

from lumina_modalities.pointcloud.evaluation import (
    mmd_cov,
    nearest_reference_accuracy,
    one_nna,
    score_pointclouds,
)
from lumina_modalities.pointcloud.metrics import FALLBACK_WARNING, chamfer_distance, emd, pairwise_chamfer


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sphere_cloud(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1)


def _cube_cloud(n: int, g: torch.Generator) -> torch.Tensor:
    x = torch.rand(n, 3, generator=g) * 2 - 1
    axis = torch.randint(3, (n,), generator=g)
    x[torch.arange(n), axis] = torch.sign(torch.rand(n, generator=g) - 0.5)  # push each point onto a face
    return x


@pytest.mark.parametrize("backend", ["pytorch3d", "torch"])
def test_chamfer_known_values(backend: str) -> None:
    x = torch.randn(50, 3, generator=_gen(0))
    assert chamfer_distance([x], [x], backend).item() == pytest.approx(0.0, abs=1e-6)
    a, b = torch.zeros(1, 3), torch.tensor([[3.0, 4.0, 0.0]])
    assert chamfer_distance([a], [b], backend).item() == pytest.approx(50.0)  # 25 each way
    # two points vs one: from X mean(1, 1) = 1; from Y min = 1
    two = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    assert chamfer_distance([two], [a], backend).item() == pytest.approx(2.0)


def test_backends_agree_on_clouds_of_different_sizes() -> None:
    g = _gen(1)
    xs = [torch.randn(n, 3, generator=g) for n in (40, 17, 64)]
    ys = [torch.randn(n, 3, generator=g) * 0.5 for n in (25, 64, 9)]
    torch.testing.assert_close(
        chamfer_distance(xs, ys, "pytorch3d"), chamfer_distance(xs, ys, "torch"), rtol=1e-5, atol=1e-6
    )


def test_fallback_when_pytorch3d_cannot_be_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    g = _gen(2)
    xs = [torch.randn(30, 3, generator=g) for _ in range(3)]
    ys = [torch.randn(20, 3, generator=g) for _ in range(2)]
    with_p3d = pairwise_chamfer(xs, ys)
    monkeypatch.setitem(sys.modules, "pytorch3d", None)  # any `import pytorch3d...` now raises ImportError
    monkeypatch.setitem(sys.modules, "pytorch3d.loss", None)
    with pytest.warns(RuntimeWarning, match="pytorch3d is not importable"):
        without = pairwise_chamfer(xs, ys)
    torch.testing.assert_close(without, with_p3d, rtol=1e-5, atol=1e-6)
    with pytest.raises(ImportError), pytest.warns(RuntimeWarning):
        chamfer_distance(xs[:1], ys[:1], backend="pytorch3d")
    assert "\n" not in FALLBACK_WARNING


def test_emd_of_a_shifted_permuted_cloud_is_the_shift_length() -> None:
    x = torch.randn(60, 3, generator=_gen(3))
    shift = torch.tensor([0.3, -0.4, 1.2])
    y = (x + shift)[torch.randperm(60, generator=_gen(4))]
    assert emd(x, y) == pytest.approx(shift.norm().item(), rel=1e-6)
    assert emd(x, x) == pytest.approx(0.0, abs=1e-12)


def test_emd_is_exact_on_small_clouds() -> None:
    g = _gen(5)
    x, y = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    cost = torch.cdist(x.double(), y.double())
    brute = min(cost[range(6), list(p)].mean().item() for p in itertools.permutations(range(6)))
    assert emd(x, y) == pytest.approx(brute, rel=1e-9)


def test_emd_approximation_on_large_or_unequal_clouds() -> None:
    g = _gen(6)
    x = _sphere_cloud(600, g) * 0.05
    y = _sphere_cloud(450, g) * 0.05 + torch.tensor([1.0, 0.0, 0.0])
    approx = emd(x, y, max_points=64, seed=1)
    assert 0.95 <= approx <= 1.1  # |shift| = 1, up to the clouds' diameter
    assert approx == emd(x, y, max_points=64, seed=1)  # seeded


def test_mmd_cov_of_identical_sets() -> None:
    g = _gen(7)
    clouds = [_sphere_cloud(64, g) * (1 + 0.2 * i) for i in range(6)]
    mmd, cov = mmd_cov(pairwise_chamfer(clouds, clouds))
    assert mmd == pytest.approx(0.0, abs=1e-6) and cov == 1.0
    mmd, cov = mmd_cov(pairwise_chamfer(clouds[:1] * 6, clouds))  # mode collapse: one sample repeated
    assert cov == pytest.approx(1 / 6) and mmd > 0.01


def test_one_nna_same_distribution_near_half_disjoint_near_one() -> None:
    g = _gen(8)
    a = [_sphere_cloud(64, g) for _ in range(24)]
    b = [_sphere_cloud(64, g) for _ in range(24)]
    c = [_cube_cloud(64, g) for _ in range(24)]

    def nna(p, q):
        return one_nna(pairwise_chamfer(p, p), pairwise_chamfer(q, q), pairwise_chamfer(p, q))

    assert 0.3 <= nna(a, b) <= 0.7
    assert nna(a, c) >= 0.95


def test_nearest_reference_accuracy_and_score() -> None:
    g = _gen(9)
    refs = [_sphere_cloud(256, g) for _ in range(4)] + [_cube_cloud(256, g) for _ in range(4)]
    labels = ["sphere"] * 4 + ["cube"] * 4
    items = [
        {"sample": r * 3 + 1, "condition": lab, "meta": {"class": lab, "name": f"r{i}"}}
        for i, (r, lab) in enumerate(zip(refs, labels, strict=True))
    ]  # scaled and shifted: normalised away
    good = [_sphere_cloud(256, g) for _ in range(4)] + [_cube_cloud(256, g) for _ in range(4)]
    bad = good[4:] + good[:4]  # every class swapped
    d_good = pairwise_chamfer(good, refs)
    assert nearest_reference_accuracy(d_good, labels, labels) == 1.0
    assert nearest_reference_accuracy(pairwise_chamfer(bad, refs), labels, labels) == 0.0
    res = score_pointclouds(good, items, emd=True, emd_points=32)
    assert res["nn_class_acc"] == 1.0 and res["nn_class_chance"] == 0.5 and res["nn_class_acc_real"] == 1.0
    assert res["nn_class_acc/cube"] == 1.0 and "cd_1nna/sphere" in res and "emd_mmd/cube" in res
    assert score_pointclouds(bad, items, emd=False)["nn_class_acc"] == 0.0
    assert np.isfinite([v for v in res.values()]).all()
