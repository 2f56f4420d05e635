"""The dataset contract, and the one way every part of Lumina builds a dataset.

A dataset registered in ``DATASETS`` is a map-style (``__len__`` + ``__getitem__``) or iterable torch
dataset that

* is built as ``Dataset(**params, split=split)`` with ``split`` one of :data:`SPLITS` - the trainer builds
  ``"train"`` for training and ``"val"`` (with the recipe's ``val_params`` merged over ``params``) for
  previews and evaluation; ``config validate`` and the conformance suite build both the same way;
* says which modality its samples are for (``modality``, a class attribute) and which kind of condition
  its items carry (``condition_kind``: ``"text"`` captions, ``"class"`` integer labels or ``"none"``), so a
  recipe pairing it with the wrong conditioner is refused before training;
* yields items ``{"sample": Tensor, "condition": str | int | None, "meta": dict}`` (``meta`` carries the
  ground truth a checker needs);
* may be a checker with ground truth: it then also subclasses :class:`lumina_core.data.Checker` and
  implements ``score(samples, items) -> {metric: float}`` (generated samples for ``items``' conditions in,
  scores in [0, 1] out; ``"chance"`` may report the score of a random guess); ``score_is_mean = True`` or
  ``score_with_verdicts`` let ``lumina eval`` grade each sample once (:mod:`lumina_core.data.checkers`).
  Registration refuses a dataset that defines ``score`` without subclassing ``Checker``.

:class:`DatasetContract` writes this down, and ``DATASETS.register`` refuses a class that does not
subclass it: map-style datasets subclass :class:`LuminaDataset` (abstract ``__len__`` and
``__getitem__``), iterable ones :class:`LuminaStream` (abstract ``__iter__``; the core's shard streams
already do).
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import torch

from lumina_core.data.checkers import Checker
from lumina_core.plugin import CONDITION_KINDS  # noqa: F401  (the one list of condition kinds, re-exported)

SPLITS = ("train", "val")


class DatasetContract(abc.ABC):  # noqa: B024 - its two concrete contracts below add the abstract methods
    """What every registered dataset declares (see the module doc for the whole contract).

    Attributes:
        modality: the modality its samples are for (a class attribute).
        condition_kind: ``"text"``, ``"class"`` or ``"none"`` (a class attribute, or a property when a
            parameter chooses it: :class:`ConditionParameter`).
        score_is_mean: ``score`` of a set is, key by key, the mean of each sample's
            ``score([sample], [item])`` (NaN left out), so ``lumina eval`` may grade each sample once.
    """

    modality: ClassVar[str] = ""
    condition_kind: str = "none"
    score_is_mean: ClassVar[bool] = False
    #: what the registry's refusal tells the author of a class that does not subclass this one
    how_to_conform: ClassVar[str] = (
        "subclass lumina_core.data.LuminaDataset (map-style: __len__ and __getitem__) or "
        "lumina_core.data.LuminaStream (iterable: __iter__)"
    )

    @classmethod
    def conformance_problems(cls) -> list[str]:
        """What registration refuses beyond the abstract methods: a ``score`` that is not a declared checker."""
        if callable(getattr(cls, "score", None)) and not issubclass(cls, Checker):
            return [
                "it defines score but does not subclass lumina_core.data.Checker, the checker contract: list "
                f"Checker among its bases (class {cls.__name__}(Checker, LuminaDataset)) and declare "
                "score_is_mean where a set's score is the mean of its samples'"
            ]
        return []


class LuminaDataset(DatasetContract, torch.utils.data.Dataset):
    """Base class of a map-style dataset.

    Subclasses set ``modality`` and ``condition_kind``, call ``super().__init__(split)`` and implement
    ``__len__`` and ``__getitem__``; ``score`` is optional.
    """

    def __init__(self, split: str = "train") -> None:
        self.split = check_split(split)

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of items."""

    @abc.abstractmethod
    def __getitem__(self, index: int) -> dict[str, Any]:
        """Item ``index``: ``{"sample": Tensor, "condition": ..., "meta": dict}``."""


class LuminaStream(DatasetContract, torch.utils.data.IterableDataset):
    """Base class of an iterable (streaming) dataset: implement ``__iter__`` yielding items as above;
    ``__len__`` is optional (an estimate where the stream knows one)."""

    @abc.abstractmethod
    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The items of one pass."""


class ConditionParameter:
    """Mixin for datasets whose ``condition`` parameter chooses what an item's condition is (a caption, a
    class id or nothing): ``condition_kind`` is that parameter. List it before the dataset base class."""

    condition: str

    @property
    def condition_kind(self) -> str:
        """``text``, ``class`` or ``none``: what the items' conditions are (the ``condition`` parameter)."""
        return self.condition


def check_condition(condition: str, allowed: Sequence[str]) -> str:
    """``condition`` when it is one of ``allowed``, else a ValueError naming both."""
    if condition not in allowed:
        names = [repr(a) for a in allowed]
        choices = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        raise ValueError(f"condition must be {choices}; got {condition!r}")
    return condition


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    return split


def condition_kind_of(dataset: Any) -> str | None:
    """The kind of condition a dataset's items carry (``text``, ``class``, ``none``), None if undeclared."""
    kind = getattr(dataset, "condition_kind", None)
    return kind if isinstance(kind, str) else None


def split_params(params: Mapping[str, Any] | None, val_params: Mapping[str, Any] | None, split: str) -> dict:
    """A split's constructor keywords: ``params``, with ``val_params`` merged over them for ``"val"``."""
    out = dict(params or {})
    if split != "train":
        out.update(val_params or {})
    return out


def build_dataset(
    name: str, params: Mapping[str, Any] | None, split: str, val_params: Mapping[str, Any] | None = None
) -> Any:
    """Build the registered dataset ``name`` for ``split`` exactly as a training run does.

    The result has the skip-and-count policy applied (:func:`lumina_core.data.robust.skip_corrupt`): a
    map-style dataset comes back wrapped in :class:`~lumina_core.data.robust.SkipCorrupt` (an unreadable item
    is logged, counted and replaced by the next readable one; the dataset's own attributes are forwarded),
    so a dataset only raises on a corrupt file and never catches.

    Raises ValueError with the dataset named when its constructor does not accept ``split`` (the contract)
    or rejects the parameters; errors the dataset raises itself (a missing folder) pass through.
    """
    from lumina_core.registry import DATASETS

    check_split(split)
    factory = DATASETS.get(name)
    kwargs = split_params(params, val_params, split)
    if "split" in kwargs:
        raise ValueError(
            f"dataset {name!r}: 'split' is not a recipe parameter (the trainer passes split='train' for "
            "training and split='val' for previews and evaluation); use data.val_params for what differs"
        )
    _check_accepts_split(name, factory)
    try:
        dataset = factory(**kwargs, split=split)
    except TypeError as exc:
        if _is_signature_error(exc):
            raise ValueError(f"dataset {name!r} (split {split!r}) rejected its parameters: {exc}") from exc
        raise
    from lumina_core.data.robust import skip_corrupt

    return skip_corrupt(dataset)


def _check_accepts_split(name: str, factory: Any) -> None:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    ps = sig.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in ps) or "split" in sig.parameters:
        return
    where = getattr(factory, "__module__", "?")
    raise ValueError(
        f"dataset {name!r} ({where}) does not accept a 'split' argument; every dataset is built as "
        f"Dataset(**params, split='train' or 'val') - add `split: str = \"train\"` to its constructor "
        "(see lumina_core.data.LuminaDataset and docs/plugins.md, 'The dataset contract')"
    )


def _is_signature_error(exc: TypeError) -> bool:
    text = str(exc)
    return any(s in text for s in ("unexpected keyword", "missing", "positional argument", "required"))


def check_condition_kinds(dataset_kind: str | None, conditioner_kind: str | None, what: str) -> str | None:
    """A message when a dataset's condition kind and its conditioner's disagree (None when they fit).

    ``none`` conditioners accept anything (the condition is ignored); datasets that declare nothing are
    not checked."""
    if dataset_kind is None or conditioner_kind is None or conditioner_kind == "none":
        return None
    if dataset_kind == conditioner_kind:
        return None
    advice = {
        "text": "a text encoder (minilm or hf)",
        "class": "the class conditioner",
        "none": "the none conditioner, or a dataset with conditions",
    }.get(dataset_kind, f"a {dataset_kind!r} conditioner")
    return (
        f"{what}: the dataset's items carry {dataset_kind!r} conditions but the conditioner encodes "
        f"{conditioner_kind!r} conditions; use {advice}"
    )
