"""Recognition: the trunk as a classifier of any modality's tokens.

Importing this package registers ``classification`` in ``OBJECTIVES`` (:class:`Classification`): a head on
pooled hidden tokens (:mod:`.heads`), label-smoothed cross-entropy, accuracy and confusion matrix
(:mod:`.metrics`). The head lives on the model (``model.heads[task]``, see :mod:`lumina_core.objective`).
"""

from lumina_core.recognition.heads import ClassifierHead, masked_mean
from lumina_core.recognition.metrics import accuracy, confusion_matrix, per_class_recall, top_k_accuracy
from lumina_core.recognition.objective import Classification

__all__ = [
    "Classification",
    "ClassifierHead",
    "accuracy",
    "confusion_matrix",
    "masked_mean",
    "per_class_recall",
    "top_k_accuracy",
]
