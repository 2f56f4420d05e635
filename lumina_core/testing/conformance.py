"""The plugin conformance suite: one pytest mix-in every modality plugin, built-in or external, runs on itself.

    from lumina_core.testing import PluginConformance

    class TestTonePlugin(PluginConformance):
        plugin_name = "tones"                      # the registered modality name
        plugin_params = {"sample_rate": 8000}     # constructor keywords (as in a recipe)
        conditions = ["a 440 Hz tone", "a click"] # raw conditions, ints for classes, or None

        def make_samples(self):                    # real samples of at least two different sizes
            return [torch.randn(1, 800), torch.randn(1, 1200)]

What it checks (each a test method; a failure says which property broke):

* ``adapter_spec``: token width == ``in_dim``, positions have ``num_axes`` axes, valid condition kinds,
  compatible ``api_version``, the registered name;
* round trip: ``detokenize(tokenize(samples)) == samples`` (per sample, in its own size);
* batch composition: a sample's tokens and positions are the same alone and inside a batch;
* ``layout(sample_shape(x))`` reproduces ``tokenize([x])``'s positions, mask and shapes, with zero tokens
  (given tokens, ``TokenBatch.given``, keep their values);
* padding invariance: a tiny ``LuminaModel`` (randomised, so no zero-initialised layer hides anything)
  gives the same velocity for a sample alone and inside a padded batch with a longer one (fp32, 1e-5), and
  the values written in padded rows change nothing;
* training: a few AdamW steps of the ``flow_matching`` objective on a fixed batch lower the loss, measured
  on fixed noise and times before and after;
* generation: ``generate()`` with a few steps gives finite samples of ``default_shape()``, and
  ``write_preview`` writes non-empty files of every declared ``preview_formats``;
* datasets: every dataset registered with ``modality == plugin_name``, built as the trainer builds it
  (``split="train"`` and ``"val"``), declares its ``condition_kind`` and yields items
  ``{"sample": Tensor, "condition": str | int | None, "meta": dict}`` of that kind that the plugin tokenizes;
* checkers: a dataset's ``score`` gives real items a high score and an untrained model's samples a score
  near chance.

Models are tiny (``dim`` 64, one layer) so a plugin's whole suite runs in seconds on a CPU.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from lumina_core import CORE_API_VERSION


class PluginConformance:
    """Mix-in of pytest tests for one modality plugin. Subclass it in a ``Test*`` class and set:

    Attributes:
        plugin_name: registered modality name (the plugin is looked up through the registry, so an
            external plugin is found through its entry point).
        plugin_params: constructor keywords of the plugin.
        conditions: raw conditions (captions, class ids) used with the samples, or None (unconditional).
        conditioner: a ``{name, params}`` node of a registered conditioner; default: a hashed-word text
            conditioner for captions, a ``class`` table for class ids, none for None.
        model_config: ``NextDiTConfig`` keywords of the tiny test model (``context_dim`` is set for you).
        round_trip_atol: tolerance of the tokenize/detokenize round trip (raise it for lossy codecs).
        padding_atol: tolerance of the padding invariance (fp32).
        train_steps, train_lr, train_batch: the loss-lowering check (``train_batch`` samples, repeated
            from ``make_samples`` when there are fewer).
        generate_steps: Euler steps of the generation check.
        dataset_params: constructor keywords per dataset name for the dataset checks (the suite adds
            ``split``, as the trainer does).
        skip_datasets: dataset names not to build in the dataset checks (e.g. ones that need files).
        checker_items, checker_real_min, checker_margin: the checker check scores ``checker_items``
            held-out items: real ones must reach ``checker_real_min``, samples of an untrained model must
            stay ``checker_margin`` below the real score and within ``checker_margin`` of chance.
        checker_metric, checker_chance: which of the checker's scores to judge (higher is better, in
            [0, 1]; default ``adherence`` if reported, else the first) and which reports its chance level.
    """

    plugin_name: ClassVar[str] = ""
    plugin_params: ClassVar[dict[str, Any]] = {}
    conditions: ClassVar[list[Any] | None] = None
    conditioner: ClassVar[dict[str, Any] | None] = None
    model_config: ClassVar[dict[str, Any]] = {
        "dim": 64,
        "n_layers": 1,
        "n_heads": 2,
        "n_kv_heads": 1,
        "multiple_of": 32,
    }
    round_trip_atol: ClassVar[float] = 1e-5
    padding_atol: ClassVar[float] = 1e-5
    train_steps: ClassVar[int] = 40
    train_lr: ClassVar[float] = 3e-3
    train_batch: ClassVar[int] = 4
    generate_steps: ClassVar[int] = 3
    dataset_params: ClassVar[dict[str, dict[str, Any]]] = {}
    skip_datasets: ClassVar[tuple[str, ...]] = ()
    checker_items: ClassVar[int] = 8
    checker_real_min: ClassVar[float] = 0.8
    checker_margin: ClassVar[float] = 0.25
    checker_metric: ClassVar[str | None] = None
    checker_chance: ClassVar[str] = "chance"
    task: ClassVar[str] = "conformance"

    # -- to provide ---------------------------------------------------------------------------------------
    def make_samples(self) -> list[Tensor]:
        """Real samples of the modality, at least two, of at least two different token lengths."""
        raise NotImplementedError(f"{type(self).__name__} must define make_samples()")

    # -- building blocks (overridable) --------------------------------------------------------------------
    def make_plugin(self) -> Any:
        from lumina_core.registry import MODALITIES

        if not self.plugin_name:
            raise AssertionError(f"{type(self).__name__} must set plugin_name (the registered modality name)")
        return MODALITIES.build({"name": self.plugin_name, "params": dict(self.plugin_params)})

    def make_conditioner(self) -> Any:
        """The conditioner the checks use (an object with ``encode``, ``dim``, ``kind``, ``null_value``)."""
        if self.conditioner is not None:
            from lumina_core.registry import CONDITIONERS

            return CONDITIONERS.build(dict(self.conditioner))
        conds = self.conditions
        if not conds:
            from lumina_core.conditioning import NoneConditioner

            return NoneConditioner()
        if all(isinstance(c, str) for c in conds):
            from lumina_core.testing.conditioners import HashTextConditioner

            return HashTextConditioner(dim=32)
        if all(isinstance(c, int) and not isinstance(c, bool) for c in conds):
            from lumina_core.conditioning import ClassConditioner

            return ClassConditioner(num_classes=max(conds) + 1, dim=32)
        raise AssertionError(
            f"{type(self).__name__}.conditions mixes kinds ({conds!r}); set `conditioner` to a registered one"
        )

    def make_model(self, plugin: Any, conditioner: Any, randomize: bool = False, seed: int = 0) -> Any:
        """A tiny ``LuminaModel`` with one task for this plugin (``randomize`` perturbs every weight)."""
        from lumina_core.model import LuminaModel, NextDiTConfig
        from lumina_core.model.adapter import RankDeficientOutputWarning

        torch.manual_seed(seed)
        cfg = NextDiTConfig(**{**self.model_config, "context_dim": getattr(conditioner, "dim", None)})
        with warnings.catch_warnings():  # the test trunk is tiny on purpose; sample quality is not checked here
            warnings.simplefilter("ignore", RankDeficientOutputWarning)
            model = LuminaModel(cfg, {self.task: plugin.adapter_spec()})
        if randomize:  # zero-initialised gates and final layers would make every output trivially equal
            gen = torch.Generator().manual_seed(seed + 1)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        return model

    def condition_values(self, n: int) -> list[Any] | None:
        """``n`` raw conditions (the declared ones, cycled), or None when unconditional."""
        if not self.conditions:
            return None
        return list(itertools.islice(itertools.cycle(self.conditions), n))

    def _encode(self, conditioner: Any, values: list[Any] | None) -> Any:
        from lumina_core.tokens import Condition

        if values is None or getattr(conditioner, "kind", "none") == "none":
            return Condition()
        return conditioner.encode(values)

    def _samples(self) -> list[Tensor]:
        samples = list(self.make_samples())
        assert len(samples) >= 2, f"make_samples() must return at least two samples; got {len(samples)}"
        for i, s in enumerate(samples):
            assert isinstance(s, Tensor), (
                f"make_samples()[{i}] must be a torch.Tensor; got {type(s).__name__}"
            )
        return samples

    def _short_and_long(self, plugin: Any, samples: Sequence[Tensor]) -> tuple[int, int, Tensor]:
        lengths = plugin.tokenize(samples).lengths
        short, long = int(lengths.argmin()), int(lengths.argmax())
        assert int(lengths[short]) < int(lengths[long]), (
            "make_samples() must return samples of different sizes (token lengths), so padding is exercised; "
            f"got token lengths {lengths.tolist()}"
        )
        return short, long, lengths

    # -- tokens ----------------------------------------------------------------------------------------------
    def test_adapter_spec_consistency(self) -> None:
        from lumina_core.plugin import CONDITION_KINDS, AdapterSpec

        plugin = self.make_plugin()
        spec = plugin.adapter_spec()
        assert isinstance(spec, AdapterSpec), f"adapter_spec() must return an AdapterSpec; got {type(spec)}"
        batch = plugin.tokenize(self._samples())
        assert batch.dim == spec.in_dim, f"token width {batch.dim} != adapter_spec().in_dim {spec.in_dim}"
        assert batch.num_axes == spec.num_axes, (
            f"positions have {batch.num_axes} axes but adapter_spec().num_axes is {spec.num_axes}"
        )
        assert batch.tokens.is_floating_point(), f"tokens must be floating point; got {batch.tokens.dtype}"
        assert torch.isfinite(batch.positions).all(), "positions must be finite"
        kinds = set(plugin.conditions)
        assert kinds and kinds <= CONDITION_KINDS, (
            f"conditions must be a non-empty subset of {sorted(CONDITION_KINDS)}; got {sorted(kinds)}"
        )
        if self.conditions:
            wanted = "text" if isinstance(self.conditions[0], str) else "class"
            assert wanted in kinds, (
                f"the test's conditions are {wanted!r} but the plugin accepts {sorted(kinds)}"
            )
        major = str(plugin.api_version).split(".")[0]
        assert major == CORE_API_VERSION.split(".")[0], (
            f"plugin api_version {plugin.api_version} is incompatible with core API {CORE_API_VERSION}"
        )
        if type(plugin).name:
            assert type(plugin).name == self.plugin_name, (
                f"the plugin class says name = {type(plugin).name!r} but is registered as {self.plugin_name!r}"
            )

    def test_round_trip(self) -> None:
        plugin = self.make_plugin()
        samples = self._samples()
        out = plugin.detokenize(plugin.tokenize(samples))
        assert len(out) == len(samples), f"detokenize returned {len(out)} samples for {len(samples)}"
        for i, (x, y) in enumerate(zip(samples, out, strict=True)):
            assert tuple(y.shape) == tuple(x.shape), (
                f"sample {i}: shape {tuple(x.shape)} came back as {tuple(y.shape)}"
            )
            err = (y.float() - x.float()).abs().max().item() if x.numel() else 0.0
            assert err <= self.round_trip_atol, (
                f"sample {i}: round trip error {err:.3g} > {self.round_trip_atol}"
            )

    def test_batch_composition(self) -> None:
        plugin = self.make_plugin()
        samples = self._samples()
        batch = plugin.tokenize(samples)
        for i, x in enumerate(samples):
            alone = plugin.tokenize([x])
            n = int(alone.lengths[0])
            assert int(batch.lengths[i]) == n, (
                f"sample {i}: {n} tokens alone but {int(batch.lengths[i])} in a batch"
            )
            assert bool(batch.mask[i, :n].all()), f"sample {i}: real tokens must come first (right padding)"
            assert torch.equal(batch.tokens[i, :n], alone.tokens[0, :n]), (
                f"sample {i}: tokens depend on the batch"
            )
            assert torch.equal(batch.positions[i, :n], alone.positions[0, :n]), (
                f"sample {i}: positions depend on the batch"
            )
            assert tuple(batch.shapes[i]) == tuple(alone.shapes[0]), (
                f"sample {i}: shapes entry depends on the batch"
            )

    def test_layout_matches_tokenize(self) -> None:
        plugin = self.make_plugin()
        samples = self._samples()
        batch = plugin.tokenize(samples)
        layout = plugin.layout([tuple(plugin.sample_shape(x)) for x in samples])
        assert tuple(layout.tokens.shape) == tuple(batch.tokens.shape), (
            f"layout tokens {tuple(layout.tokens.shape)} != tokenize tokens {tuple(batch.tokens.shape)}"
        )
        assert torch.equal(layout.mask, batch.mask), (
            "layout(sample_shape(x)) gives another mask than tokenize"
        )
        assert torch.equal(layout.positions, batch.positions), (
            "layout(sample_shape(x)) gives other positions than tokenize"
        )
        assert [tuple(s) for s in layout.shapes] == [tuple(s) for s in batch.shapes], (
            "layout(sample_shape(x)) gives other shapes than tokenize"
        )
        free = ~layout.given[..., None] if layout.given is not None else torch.ones_like(layout.tokens[..., :1])
        assert not (layout.tokens.abs() * free).any(), "layout() must return zero tokens (but given ones)"
        assert (layout.given is None) == (batch.given is None) and (
            batch.given is None or torch.equal(layout.given, batch.given)
        ), "layout(sample_shape(x)) and tokenize mark other tokens as given"
        if batch.given is not None:
            err = ((layout.tokens - batch.tokens).abs() * batch.given[..., None]).max().item()
            assert err <= self.round_trip_atol, (
                f"layout(sample_shape(x)) gives other values to the given tokens than tokenize (max {err:.3g})"
            )
        assert (layout.token_cond is None) == (batch.token_cond is None), (
            "layout(sample_shape(x)) and tokenize disagree on whether there is per-token conditioning"
        )
        if batch.token_cond is not None:
            err = (layout.token_cond - batch.token_cond).abs().max().item()
            assert err <= self.round_trip_atol, (
                f"layout(sample_shape(x)) gives other token_cond than tokenize (max difference {err:.3g})"
            )
        default = plugin.layout([tuple(plugin.default_shape())])
        assert default.batch_size == 1 and int(default.lengths[0]) > 0, (
            "layout(default_shape()) has no tokens"
        )

    # -- with the trunk ---------------------------------------------------------------------------------------
    def test_padding_invariance(self) -> None:
        plugin = self.make_plugin()
        conditioner = self.make_conditioner()
        model = self.make_model(plugin, conditioner, randomize=True).eval()
        samples = self._samples()
        short, long, _ = self._short_and_long(plugin, samples)
        conds = self.condition_values(len(samples))

        def pick(idx: list[int]) -> tuple[Any, Any]:
            values = None if conds is None else [conds[i] for i in idx]
            return plugin.tokenize([samples[i] for i in idx]), self._encode(conditioner, values)

        t_short, t_long = torch.tensor([0.3]), torch.tensor([0.8])
        with torch.no_grad():
            alone_b, alone_c = pick([short])
            alone = model.velocity(alone_b, t_short, alone_c, task=self.task)[0]
            n = int(alone_b.lengths[0])
            for order in ([short, long], [long, short]):
                batch, cond = pick(order)
                pos = order.index(short)
                t = torch.cat([t_short, t_long]) if pos == 0 else torch.cat([t_long, t_short])
                out = model.velocity(batch, t, cond, task=self.task)
                tol = self.padding_atol * max(1.0, alone.abs().max().item())  # fp32 rounding grows with scale
                err = (out[pos, :n] - alone[:n]).abs().max().item()
                assert err <= tol, (
                    f"velocity of a sample alone and inside a padded batch differ by {err:.3g} "
                    f"(> {tol:.3g}); batch order {order}"
                )
                # whatever sits in the padded rows must not matter
                noisy = batch.tokens.clone()
                noisy[~batch.mask] = 7.0 * torch.randn(int((~batch.mask).sum()), batch.dim)
                out2 = model.velocity(batch.with_tokens(noisy), t, cond, task=self.task)
                err2 = (out2[batch.mask] - out[batch.mask]).abs().max().item()
                assert err2 <= tol, f"values in padded token rows changed real outputs by {err2:.3g}"

    def test_training_lowers_loss(self) -> None:
        from lumina_core.registry import OBJECTIVES

        plugin = self.make_plugin()
        conditioner = self.make_conditioner()
        model = self.make_model(plugin, conditioner).train()
        objective = OBJECTIVES.build({"name": "flow_matching", "params": {}})
        base = self._samples()
        samples = list(itertools.islice(itertools.cycle(base), max(self.train_batch, len(base))))
        conds = self.condition_values(len(samples))
        batch = plugin.tokenize(samples)
        params = list(model.parameters())
        if getattr(conditioner, "trainable", False):
            params += list(conditioner.parameters())
        opt = torch.optim.AdamW(params, lr=self.train_lr, weight_decay=0.0)

        def fixed_loss() -> float:
            with torch.no_grad():
                total = 0.0
                for k in range(4):
                    gen = torch.Generator().manual_seed(1000 + k)
                    cond = self._encode(conditioner, conds)
                    total += float(objective.loss(model, self.task, batch, cond, generator=gen)[0])
                return total / 4

        before = fixed_loss()
        assert before == before and before < float("inf"), f"initial loss is not finite: {before}"
        for step in range(self.train_steps):
            gen = torch.Generator().manual_seed(step)
            loss, _ = objective.loss(model, self.task, batch, self._encode(conditioner, conds), generator=gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        after = fixed_loss()
        assert after < 0.95 * before, (
            f"{self.train_steps} AdamW steps (lr {self.train_lr}) on a fixed batch did not lower the flow "
            f"matching loss: {before:.4f} -> {after:.4f}"
        )

    def test_generate_and_preview(self, tmp_path: Path) -> None:
        from lumina_core.sampling import generate

        plugin = self.make_plugin()
        conditioner = self.make_conditioner()
        model = self.make_model(plugin, conditioner, randomize=True)
        n = 2
        conds = self.condition_values(n)
        shape = tuple(plugin.default_shape())
        samples = generate(
            model,
            plugin,
            conditioner,
            self.task,
            conds,
            shapes=[shape] * n,
            steps=self.generate_steps,
            solver="euler",
            grid={"name": "uniform", "params": {}},
            seed=0,
        )
        assert len(samples) == n, f"generate() returned {len(samples)} samples for {n}"
        for i, s in enumerate(samples):
            assert torch.isfinite(s).all(), f"generated sample {i} is not finite"
            assert tuple(plugin.sample_shape(s)) == shape, (
                f"generated sample {i} has shape descriptor {tuple(plugin.sample_shape(s))}, asked for {shape}"
            )
        formats = {str(f).lower().lstrip(".") for f in plugin.preview_formats}
        assert formats, "the plugin must declare preview_formats (e.g. ('png',)) and write them"
        paths = plugin.write_preview(
            samples, conds if conds is not None else [None] * n, tmp_path, "conformance"
        )
        paths = [Path(p) for p in paths]
        assert paths, "write_preview wrote no files"
        for p in paths:
            assert p.is_file() and p.stat().st_size > 0, (
                f"write_preview returned {p}, which is missing or empty"
            )
        written = {p.suffix.lower().lstrip(".") for p in paths}
        missing = formats - written
        assert not missing, (
            f"preview_formats declares {sorted(formats)} but no {sorted(missing)} file was written"
        )

    # -- data ------------------------------------------------------------------------------------------------
    def _datasets(self, splits: Sequence[str] = ("train", "val")) -> tuple[list[tuple[str, str, Any]], list[str]]:
        """``[(name, split, dataset)]`` for every dataset of this modality, built exactly as a training run
        builds them (:func:`lumina_core.data.build_dataset`), and the names skipped with the reason."""
        import inspect

        from lumina_core.data import build_dataset
        from lumina_core.registry import DATASETS

        self.make_plugin()  # loads the plugin, which registers its datasets
        mine = [(n, d) for n, d in DATASETS.items() if getattr(d, "modality", None) == self.plugin_name]
        built, skipped = [], []
        for name, factory in mine:
            if name in self.skip_datasets:
                skipped.append(f"{name} (in skip_datasets)")
                continue
            params = dict(self.dataset_params.get(name, {}))
            try:
                required = [
                    p.name
                    for p in inspect.signature(factory).parameters.values()
                    if p.default is inspect.Parameter.empty
                    and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                    and p.name not in params
                ]
            except (TypeError, ValueError):
                required = []
            if required:
                skipped.append(f"{name} (needs {', '.join(required)}: give them in dataset_params)")
                continue
            for split in splits:
                built.append((name, split, build_dataset(name, params, split)))
        return built, skipped

    def test_datasets_yield_items(self) -> None:
        import pytest

        from lumina_core.data import CONDITION_KINDS, condition_kind_of

        plugin = self.make_plugin()
        built, skipped = self._datasets()
        for name, split, dataset in built:
            kind = condition_kind_of(dataset)
            assert kind in CONDITION_KINDS, (
                f"dataset {name!r} must declare condition_kind, one of {CONDITION_KINDS}; got {kind!r} "
                "(see lumina_core.data.LuminaDataset)"
            )
            items = self._first_items(dataset, 2)
            assert items, f"dataset {name!r} (split {split!r}) yielded no items"
            for k, item in enumerate(items):
                self._check_item(plugin, f"{name}[{split}]", k, item)
                cond = item["condition"]
                declared = {"text": str, "class": int, "none": type(None)}[kind]
                assert isinstance(cond, declared) and not isinstance(cond, bool), (
                    f"dataset {name!r} declares condition_kind {kind!r} but item {k} has condition "
                    f"{cond!r} ({type(cond).__name__})"
                )
        if not built:
            pytest.skip(
                f"no dataset of modality {self.plugin_name!r} to check; skipped: {skipped or 'none registered'}"
            )

    def test_dataset_checker_tells_real_from_junk(self) -> None:
        """A checker (``dataset.score``) must give real items a high score and samples of an untrained
        model a score near chance: a checker that passes junk would make every evaluation look good."""
        import pytest

        from lumina_core.sampling import generate

        plugin = self.make_plugin()
        built, _ = self._datasets(("val",))
        scored = [(n, ds) for n, _, ds in built if callable(getattr(ds, "score", None))]
        if not scored:
            pytest.skip(f"no dataset of modality {self.plugin_name!r} has a checker (score)")
        for name, dataset in scored:
            items = self._first_items(dataset, self.checker_items)
            real_scores = dataset.score([it["sample"] for it in items], items)
            metric, real = self._headline(real_scores, self.checker_metric)
            conds = [it["condition"] for it in items]
            conditioner = self._conditioner_for(conds)
            model = self.make_model(plugin, conditioner, randomize=True, seed=3)
            junk = generate(
                model, plugin, conditioner, self.task,
                conds if any(c is not None for c in conds) else None,
                shapes=[tuple(plugin.sample_shape(it["sample"])) for it in items],
                steps=self.generate_steps, solver="euler", grid={"name": "uniform", "params": {}}, seed=0,
            )  # fmt: skip
            junk_scores = dataset.score([s.detach().float() for s in junk], items)
            _, fake = self._headline(junk_scores, metric)
            assert real >= self.checker_real_min, (
                f"dataset {name!r}: its checker gives real items {metric} = {real:.3f} (< "
                f"{self.checker_real_min}); a checker must recognise the ground truth"
            )
            chance = real_scores.get(self.checker_chance)
            ceiling = min(real - self.checker_margin, (chance + self.checker_margin) if chance is not None else 1.0)
            assert fake <= ceiling, (
                f"dataset {name!r}: its checker gives samples of an untrained model {metric} = {fake:.3f} "
                f"(real items {real:.3f}, chance {chance}); junk must score near chance (<= {ceiling:.3f})"
            )

    @staticmethod
    def _headline(scores: dict[str, float], metric: str | None = None) -> tuple[str, float]:
        """The checker's headline metric: ``metric``, else ``adherence``, else its first score that is not a
        chance level."""
        for key in (metric, "adherence"):
            if key is not None and key in scores:
                return key, float(scores[key])
        if metric is not None:
            raise AssertionError(f"the checker reports no {metric!r} (checker_metric); it reports {sorted(scores)}")
        for key, value in scores.items():
            if key != "chance" and not key.endswith("_chance"):
                return key, float(value)
        raise AssertionError(f"the checker returned no score besides chance: {scores}")

    def _conditioner_for(self, conds: Sequence[Any]) -> Any:
        """A conditioner for a dataset's raw conditions (text, class labels or none)."""
        if all(c is None for c in conds):
            from lumina_core.conditioning import NoneConditioner

            return NoneConditioner()
        if all(isinstance(c, str) for c in conds):
            from lumina_core.testing.conditioners import HashTextConditioner

            return HashTextConditioner(dim=32)
        from lumina_core.conditioning import ClassConditioner

        return ClassConditioner(num_classes=max(int(c) for c in conds if c is not None) + 1, dim=32)

    @staticmethod
    def _first_items(dataset: Any, n: int) -> list[Any]:
        if hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
            return [dataset[i] for i in range(min(n, len(dataset)))]
        return list(itertools.islice(iter(dataset), n))

    def _check_item(self, plugin: Any, name: str, k: int, item: Any) -> None:
        where = f"dataset {name!r} item {k}"
        assert isinstance(item, dict), (
            f"{where}: expected a dict with sample, condition, meta; got {type(item).__name__}"
        )
        missing = {"sample", "condition", "meta"} - set(item)
        assert not missing, f"{where}: missing keys {sorted(missing)}"
        sample, cond, meta = item["sample"], item["condition"], item["meta"]
        assert isinstance(sample, Tensor) and sample.is_floating_point(), (
            f"{where}: sample must be a float Tensor"
        )
        assert (
            cond is None or isinstance(cond, str) or (isinstance(cond, int) and not isinstance(cond, bool))
        ), f"{where}: condition must be str, int or None; got {type(cond).__name__}"
        if isinstance(cond, str):
            assert "text" in plugin.conditions, f"{where}: a caption, but the plugin does not accept text"
        if isinstance(cond, int):
            assert "class" in plugin.conditions, (
                f"{where}: a class id, but the plugin does not accept classes"
            )
        assert isinstance(meta, dict), f"{where}: meta must be a dict; got {type(meta).__name__}"
        batch = plugin.tokenize([sample])
        back = plugin.detokenize(batch)[0]
        assert tuple(back.shape) == tuple(sample.shape), (
            f"{where}: the plugin does not round-trip the sample's shape"
        )
