"""The Task: one entry of a recipe's ``tasks`` list, built - its plugin, conditioner, objective, datasets and
sampling settings, with the two things a run does with a task.

    loss    = task.loss(model, batch, generator)                 # one training batch -> scalar loss
    samples = task.generate(model, conditions, shapes, device)   # conditions -> samples, in batches
    result  = task.evaluate(model, items, dataset, device)       # held-out items -> scores (any task)

The Lightning module, the preview callback, ``lumina sample``, ``lumina eval`` and ``lumina serve`` all go
through these methods, so there is one training step, one generate loop and one evaluation per task in the
codebase. What the task is (generative or not, the kind of condition, the null condition, the sampling
settings) are properties read through :class:`~lumina_core.training.task_facts.TaskFacts`; what a training
run keeps per task (datasets, positions, loss tallies) is its :class:`~lumina_core.training.task_run.TaskRun`.

A training batch of a task::

    tokens = plugin.tokenize(samples)
    raw    = drop_conditions(conditions, p = conditioning.drop_prob, null, generator)   # classifier-free guidance
    loss   = objective.loss(model, task, tokens, conditioner.encode(raw), generator [, targets])

Generation in batches of ``eval.batch_size``: batch ``k`` (items ``start = k * batch_size ...``) uses noise seed
``sampling.seed + start``, so a sample's noise does not depend on how many samples are asked for in all.

Evaluation: a generative task generates for the held-out items (their conditions and shapes) and scores the
samples with ``plugin.evaluate(samples, items, dataset)``, each sample graded once
(:mod:`~lumina_core.training.verdicts`); a recognition task's objective scores the items itself
(``objective.evaluate``: accuracy, a confusion matrix). Both return a :class:`TaskEvaluation`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from lumina_core.config.schema import TaskConfig
from lumina_core.training.task_facts import TaskFacts, build_objective

__all__ = ["Task", "TaskEvaluation", "build_conditioner", "build_objective", "build_task"]


@dataclass
class TaskEvaluation:
    """One evaluation of a task on held-out items.

    Attributes:
        scores: ``{metric: value}`` (the plugin's, or the recognition objective's).
        settings: the sampling settings it ran with (the task's, overrides applied).
        details: non-scalar results (a classifier's confusion matrix), else None.
        samples: the generated samples (generative tasks; None for recognition).
        verdicts: each sample's own scores, when the checker graded them one by one (else None).
        score_kwargs: the keywords the plugin passed to the checker (to grade a sample alone the same way).
    """

    scores: dict[str, float]
    settings: SamplingSettings
    details: Any = None
    samples: list[Any] | None = None
    verdicts: list[dict[str, float]] | None = None
    score_kwargs: dict[str, Any] = field(default_factory=dict)

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from lumina_core.sampling.settings import SamplingSettings


class Task:
    """A built recipe task.

    Attributes:
        name: the task's name (metrics, previews, checkpoint keys, ``model.adapters[name]``).
        config: the task's typed recipe section (:class:`TaskConfig`).
        plugin: the modality plugin (tokenize, layout, detokenize, previews, evaluate).
        conditioner: the conditioner (text encoder, class table, none).
        objective: the training objective (flow matching, classification, ...).
    """

    def __init__(self, config: TaskConfig, plugin: Any, conditioner: nn.Module, objective: Any) -> None:
        self.config = config
        self.name = config.name
        self.plugin = plugin
        self.conditioner = conditioner
        self.objective = objective
        self._sampling: SamplingSettings | None = None

    def __repr__(self) -> str:
        return f"Task({self.name!r}, modality={self.config.modality.name!r}, conditioner={self.conditioner!r})"

    # -- what the task is --------------------------------------------------------------------------------------
    @cached_property
    def facts(self) -> TaskFacts:
        """The task's facts (:class:`TaskFacts`), from its section and its built objective."""
        return TaskFacts.of(self.config, self.objective)

    @property
    def generative(self) -> bool:
        """True when the task generates (flow matching); False for a classifier, which generates nothing."""
        return self.facts.generative

    @property
    def condition_kind(self) -> str:
        """The kind of condition the conditioner encodes: ``"text"``, ``"class"``, ``"none"`` (or a plugin's)."""
        return self.facts.condition_kind

    @property
    def null_condition(self) -> Any:
        """The raw condition meaning "no condition" (``""``, the null class, None): what guidance drops to."""
        return getattr(self.conditioner, "null_value", None)

    @property
    def loss_weight(self) -> float:
        return float(self.config.loss_weight)

    @property
    def draw_weight(self) -> float:
        return float(self.config.draw_weight)

    @property
    def batch_size(self) -> int:
        return int(self.config.data.batch_size)

    @property
    def context_dim(self) -> int | None:
        """The width of the conditioner's features (None: an unconditional task)."""
        return getattr(self.conditioner, "dim", None)

    # -- data ---------------------------------------------------------------------------------------------------
    def dataset(self, split: str, check_condition_kind: bool = False, **val_params: Any) -> Any:
        """The task's dataset for ``split`` ("train" or "val"; see :func:`lumina_core.data.build_dataset`);
        ``val_params`` override the recipe's ``data.val_params`` (an evaluation sweep). With
        ``check_condition_kind`` a dataset whose condition kind the conditioner does not encode is refused."""
        from lumina_core.data.contract import build_dataset, check_condition_kinds, condition_kind_of

        data = self.config.data
        ds = build_dataset(data.name, dict(data.params), split, {**data.val_params, **val_params})
        if check_condition_kind:
            problem = check_condition_kinds(condition_kind_of(ds), self.condition_kind, f"task {self.name!r}")
            if problem:
                raise ValueError(problem)
        return ds

    def eval_splits(self) -> Iterator[tuple[str, Any]]:
        """``(suffix, val dataset)`` pairs for evaluation: ``("", val)``, or one per value of ``eval.sweep``
        (``("@size=16", val at size 16)``, ...): see :mod:`lumina_core.training.evaluation`."""
        sweep = dict(self.config.eval.sweep or {})
        if not sweep:
            yield "", self.dataset("val")
            return
        if len(sweep) != 1:
            raise ValueError(
                f"task {self.name!r}: eval.sweep takes one dataset parameter and its values, e.g. "
                f"{{size: [16, 32, 64]}}; got {sweep}"
            )
        ((param, values),) = sweep.items()
        if not isinstance(values, list) or not values:
            raise ValueError(f"task {self.name!r}: eval.sweep.{param} must be a non-empty list; got {values!r}")
        for value in values:
            yield f"@{param}={value}", self.dataset("val", **{param: value})

    def example_conditions(self, limit: int = 8) -> list[str]:
        """Up to ``limit`` distinct conditions of the held-out items, as text (captions, class ids), from the
        first ``16 * limit`` items; unconditioned items give none."""
        val = self.dataset("val")
        found: list[str] = []
        for i in range(min(len(val), 16 * limit)):
            cond = val[i].get("condition")
            if cond is not None and str(cond) not in found:
                found.append(str(cond))
            if len(found) >= limit:
                break
        return found

    # -- training -----------------------------------------------------------------------------------------------
    def loss(
        self, model: Any, batch: dict[str, Any], generator: torch.Generator, device: Any = "cpu"
    ) -> Tensor:
        """The task's loss on one collated batch ``{"samples", "conditions", "meta"}`` (condition dropout,
        noise and times drawn from ``generator``)."""
        from lumina_core.conditioning import drop_conditions
        from lumina_core.objective import Objective

        tokens = self.plugin.tokenize(batch["samples"]).to(device)
        raw = drop_conditions(
            batch["conditions"], float(self.config.conditioning.drop_prob), self.null_condition, generator
        )
        cond = self.conditioner.encode(raw, device=device)
        objective = self.objective
        targets = objective.targets(batch) if isinstance(objective, Objective) else None
        extra = {} if targets is None else {"targets": targets}  # flow matching's target is the data itself
        loss, _ = objective.loss(model, self.name, tokens, cond, generator=generator, **extra)
        return loss

    # -- generation ---------------------------------------------------------------------------------------------
    @property
    def sampling(self) -> SamplingSettings:
        """The task's ``sampling`` section built once (solver, grid, guidance, RoPE scaling, context drop...)."""
        if self._sampling is None:
            from lumina_core.sampling.settings import SamplingSettings

            self._sampling = SamplingSettings.from_config(self.config.sampling)
        return self._sampling

    def sampling_settings(self, **overrides: Any) -> SamplingSettings:
        """The task's :attr:`sampling` settings with ``overrides`` applied, named as in the recipe (e.g.
        ``steps=8``; a ``None`` override keeps the recipe's value; an unknown name raises ValueError)."""
        return self.sampling.with_overrides(**overrides)

    def shapes_of(self, items: Sequence[dict[str, Any]]) -> list[tuple[int, ...]]:
        """The sample shape of each dataset item (generate at the held-out items' own sizes)."""
        return [tuple(self.plugin.sample_shape(it["sample"])) for it in items]

    def generate(
        self,
        model: Any,
        conditions: Sequence[Any] | None,
        shapes: Sequence[tuple[int, ...]] | None = None,
        device: Any = "cpu",
        batch_size: int | None = None,
        on_batch: Callable[[int, list[Tensor], int], None] | None = None,
        return_nfe: bool = False,
        init: Sequence[Tensor] | None = None,
        strength: float | None = None,
        refuse_nonfinite: bool = True,
        settings: SamplingSettings | None = None,
        **overrides: Any,
    ) -> list[Tensor] | tuple[list[Tensor], int]:
        """Samples (detached, float32, on the CPU) for ``conditions`` (or for ``shapes`` alone), generated in
        batches of ``batch_size`` (default ``eval.batch_size``) with the task's sampling settings
        (``overrides`` replace them). ``on_batch(start, samples, seed)`` is called as each batch lands.
        ``return_nfe``: also return the network evaluations per batch (a guided pair counts once).
        ``init`` (one sample per condition) and ``strength``: image-to-image (SDEdit; see ``generate``).
        A batch with a non-finite sample raises ValueError before ``on_batch`` sees it (``refuse_nonfinite=False``:
        returned as it is, e.g. for training previews, where the run's non-finite checks decide). ``settings``:
        settings the caller already built (then ``overrides`` must be empty)."""
        from lumina_core.sampling import generate

        if not self.generative:
            raise ValueError(
                f"task {self.name!r} is a classification task: it generates nothing; use `lumina predict` to "
                "classify files, or pick a generative task"
            )
        n = len(conditions) if conditions is not None else len(shapes or init or [])
        conds = list(conditions) if conditions is not None else [None] * n
        if settings is None:
            settings = self.sampling_settings(**overrides)
        elif overrides:
            raise TypeError(f"give settings or overrides, not both; got overrides {sorted(overrides)}")
        bs = max(1, int(batch_size or self.config.eval.batch_size))
        out: list[Tensor] = []
        nfe = 0
        for start in range(0, n, bs):
            chunk = conds[start : start + bs]
            seed = settings.seed + start
            extra = {} if init is None else {"init": list(init[start : start + bs]), "strength": strength}
            batch, nfe = generate(
                model, self.plugin, self.conditioner, self.name, chunk,
                shapes=None if shapes is None else list(shapes[start : start + bs]),
                settings=settings.with_seed(seed), device=device, return_nfe=True, **extra,
            )  # fmt: skip
            batch = [x.detach().float().cpu() for x in batch]
            if refuse_nonfinite:
                _refuse_nonfinite_samples(self.name, start, batch)
            if on_batch is not None:
                on_batch(start, batch, seed)
            out += batch
        return (out, nfe) if return_nfe else out


    # -- evaluation ---------------------------------------------------------------------------------------------
    def evaluate(
        self,
        model: Any,
        items: Sequence[dict[str, Any]],
        dataset: Any,
        device: Any = "cpu",
        on_batch: Callable[[int, list[Tensor], int], None] | None = None,
        **overrides: Any,
    ) -> TaskEvaluation:
        """Score the model on held-out ``items`` of ``dataset`` (see the module docstring), with the task's
        sampling settings (``overrides`` replace them). ``on_batch``: as in :meth:`generate` (generative only)."""
        settings = self.sampling_settings(**overrides)
        batch_size = int(self.config.eval.batch_size)
        if not self.generative:  # evaluates held-out items itself (a classifier)
            scores, details = self.objective.evaluate(
                model, self.name, self.plugin, self.conditioner, list(items), device, batch_size,
                settings.rope_scaling,
            )  # fmt: skip
            return TaskEvaluation({k: float(v) for k, v in scores.items()}, settings, details)
        from lumina_core.training.verdicts import VerdictRecorder

        samples = self.generate(
            model, [it.get("condition") for it in items], self.shapes_of(items), device=device,
            on_batch=on_batch, settings=settings,
        )  # fmt: skip
        recorder = VerdictRecorder(dataset, samples, items)  # each sample graded once (training/verdicts.py)
        scores = {k: float(v) for k, v in self.plugin.evaluate(samples, items, recorder.dataset).items()}
        return TaskEvaluation(scores, settings, None, samples, recorder.verdicts, recorder.kwargs)


def _refuse_nonfinite_samples(task: str, start: int, batch: list[Tensor]) -> None:
    """ValueError when a generated sample holds a NaN or an infinity: written out it would be a black image or
    a silent file, and it means the weights make the flow diverge, not that the input was odd."""
    import torch

    bad = [start + i for i, x in enumerate(batch) if not bool(torch.isfinite(x).all())]
    if bad:
        raise ValueError(
            f"task {task!r}: {len(bad)} of the {len(batch)} samples from number {start} on came out non-finite "
            f"(NaN or infinity; samples {bad[:5]}), so none of them is written. The weights make the flow "
            "diverge: a LoRA scale far too large, or a diverged or damaged checkpoint"
        )


def build_task(config: TaskConfig) -> Task:
    """Plugin, conditioner and objective of one typed task section."""
    from lumina_core.registry import MODALITIES

    plugin = MODALITIES.build(config.modality)
    return Task(config, plugin, build_conditioner(config), build_objective(config))


def build_conditioner(config: TaskConfig) -> nn.Module:
    """The task's conditioner; a frozen one wrapped in the feature cache when ``conditioning.cache``."""
    import lumina_core.conditioning  # noqa: F401  (registers the built-in conditioners)
    from lumina_core.registry import CONDITIONERS

    enc = CONDITIONERS.build(config.conditioning.encoder)
    if config.conditioning.cache and not getattr(enc, "trainable", False):
        from lumina_core.conditioning import CachedConditioner

        enc = CachedConditioner(enc)
    return enc
