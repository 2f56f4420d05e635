"""Classification metrics against hand-computed answers."""

from __future__ import annotations

import math

import pytest
import torch

from lumina_core.recognition import accuracy, confusion_matrix, per_class_recall, top_k_accuracy


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    pred = torch.tensor([0, 1, 1, 2, 2, 2, 0])
    true = torch.tensor([0, 1, 2, 2, 2, 0, 0])
    conf = confusion_matrix(pred, true, 4)
    expected = torch.tensor([[2, 0, 1, 0], [0, 1, 0, 0], [0, 1, 2, 0], [0, 0, 0, 0]])
    assert torch.equal(conf, expected)
    recall = per_class_recall(conf)
    assert recall[:3].tolist() == pytest.approx([2 / 3, 1.0, 2 / 3])
    assert math.isnan(float(recall[3]))  # a class with no item has no recall


def test_accuracy_and_top_k():
    logits = torch.tensor([[3.0, 2.0, 1.0], [0.0, 1.0, 2.0], [5.0, 4.0, 0.0], [0.0, 0.5, 0.2]])
    y = torch.tensor([1, 2, 0, 0])
    assert accuracy(logits, y) == pytest.approx(0.5)
    assert top_k_accuracy(logits, y, 2) == pytest.approx(0.75)  # the last item's class is ranked third
    assert top_k_accuracy(logits, y, 10) == pytest.approx(1.0)  # k capped at the class count


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="lie in 0..2"):
        confusion_matrix(torch.tensor([0, 3]), torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match=r"expected logits \(N, K\)"):
        accuracy(torch.zeros(3), torch.zeros(3, dtype=torch.long))
