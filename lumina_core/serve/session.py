"""What the demo page does, without the page: load a trained run once, turn a page request into samples.

    session = ServeSession(cfg, "last")            # loads the run (or remembers why it could not)
    result = session.generate("shapes", "a red circle on the left", steps=10, num=2)
    result.ok, result.message, result.items        # items: PreviewItem(kind, path, label), by the plugin

Loading and sampling reuse the public API: :func:`lumina_core.training.api.load_run` for the weights (EMA by
default, like previews and evaluation) and :func:`lumina_core.sampling.generate` with the task's recipe
sampling settings, which the page's fields override. The files come from the task plugin's
``write_preview`` and are described for the page by its ``preview_items`` (the plugin contract), so an
external plugin needs nothing else to get a page.

Nothing a person types may stop the server: every failure of a request becomes a :class:`PageResult` with
``ok=False`` and a message written for that person (the traceback goes to the server's log). A run with no
checkpoint yet is reported the same way and tried again on the next request, so a page started beside a
training run works once the first checkpoint lands.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lumina_core.plugin import PreviewItem

log = logging.getLogger("lumina.serve")

#: most samples one request may ask for (the page has this many audio / 3-D / video slots)
MAX_SAMPLES = 4


@dataclass(frozen=True)
class TaskInfo:
    """What the page needs to know about one task of the recipe, read from the recipe alone."""

    name: str
    modality: str
    condition: str  # the conditioner's kind: "text", "class", "none" (or a plugin's own, e.g. "camera")
    num_classes: int | None
    defaults: dict[str, Any]  # steps, solver, cfg_scale, seed from the task's sampling section


@dataclass
class PageResult:
    """One request's outcome: the files to show (``items``) or a message saying what went wrong."""

    ok: bool
    message: str
    items: list[PreviewItem] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[PreviewItem]:
        return [it for it in self.items if it.kind == kind]


def _task_info(task: Any) -> TaskInfo:
    import lumina_core.conditioning  # noqa: F401  (registers the built-in conditioners)
    from lumina_core.registry import CONDITIONERS

    enc = task.conditioning.encoder
    kind = getattr(CONDITIONERS.get(str(enc.name)), "kind", "none")
    params = enc.params or {}
    num_classes = int(params["num_classes"]) if kind == "class" and "num_classes" in params else None
    s = task.sampling
    kw = {"steps": int(s.steps), "cfg_scale": float(s.cfg_scale), "seed": int(s.seed)}
    solver = s.solver if isinstance(s.solver, str) else s.solver.name
    defaults = {"steps": kw["steps"], "solver": solver, "cfg_scale": kw["cfg_scale"], "seed": kw["seed"]}
    return TaskInfo(str(task.name), str(task.modality.name), str(kind), num_classes, defaults)


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """``"3, 48, 64"`` (or ``3x48x64``) -> ``(3, 48, 64)``; empty -> None (the plugin's default shape)."""
    text = (text or "").strip().strip("()[]")
    if not text:
        return None
    parts = [p for p in text.replace("x", ",").replace(" ", ",").split(",") if p]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(
            f"the shape must be positive integers separated by commas, e.g. '3, 32, 32'; got {text!r}"
        )
    return tuple(int(p) for p in parts)


class ServeSession:
    """A trained run ready to sample from, for the page (or any caller wanting files plus their kinds).

    Args:
        cfg: the recipe (a DictConfig or dict) the run was trained with.
        checkpoint: a checkpoint or run directory, or ``"last"`` (the recipe run's newest checkpoint).
        out_dir: where each request's files go (one sub-folder per request); default a fresh temporary folder.
        device: torch device (default: the recipe's ``run.device``).
        weights: ``"ema"`` (default) or ``"model"``.
    """

    def __init__(
        self,
        cfg: Any,
        checkpoint: str | Path | None = "last",
        out_dir: str | Path | None = None,
        device: str | None = None,
        weights: str = "ema",
    ) -> None:
        from lumina_core.config.typed import typed_recipe

        self.cfg = typed_recipe(cfg)
        self.checkpoint = checkpoint or "last"
        self.device = device
        self.weights = weights
        self.out_dir = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="lumina-serve-"))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.tasks = {str(t.name): _task_info(t) for t in self.cfg.tasks}
        self._lock = threading.Lock()
        self._parts: Any = None  # the loaded run (lumina_core.training.build.RunParts)
        self._requests = 0
        self._examples: dict[str, list[str]] = {}
        self.load_error: str | None = None
        self.load()

    # -- loading ---------------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._parts is not None

    def load(self) -> bool:
        """Load the run's weights (once); on failure remember a message for the page and return False."""
        if self._parts is not None:
            return True
        from lumina_core.training.api import load_run

        try:
            self._parts = load_run(self.cfg, self.checkpoint, weights=self.weights, device=self.device)
            self.load_error = None
            log.info("loaded %s (checkpoint %s)", self.cfg.run.output_dir, self.checkpoint)
        except (FileNotFoundError, ValueError) as exc:
            self.load_error = (
                f"no trained model to sample from yet: {exc}. Train the recipe first "
                f"(`lumina train RECIPE`), then submit again - the page keeps running."
            )
        return self._parts is not None

    def default_shape(self, task: str) -> tuple[int, ...] | None:
        """The task plugin's ``default_shape()`` once the run is loaded, else None."""
        if self._parts is None or task not in self._parts.tasks:
            return None
        return tuple(int(v) for v in self._parts.tasks[task].plugin.default_shape())

    def examples(self, task: str, limit: int = 8) -> list[str]:
        """Up to ``limit`` distinct conditions of the task's held-out items, as the prompt box takes them
        (captions, class ids); empty for an unconditional task or when the dataset cannot be built here."""
        if task in self._examples:
            return self._examples[task]
        from lumina_core.training.task import build_task

        found: list[str] = []
        if self.tasks[task].condition in ("text", "class"):
            try:
                tcfg = next(t for t in self.cfg.tasks if str(t.name) == task)
                val = build_task(tcfg).dataset("val")
                for i in range(min(len(val), 16 * limit)):
                    cond = val[i].get("condition")
                    if cond is not None and str(cond) not in found:
                        found.append(str(cond))
                    if len(found) >= limit:
                        break
            except Exception as exc:  # noqa: BLE001 - examples are a convenience (e.g. data not on this machine)
                log.info("no examples for task %s: %s: %s", task, type(exc).__name__, exc)
        self._examples[task] = found
        return found

    # -- a request --------------------------------------------------------------------------------------
    def condition_for(self, task: str, prompt: str | None) -> Any:
        """The page's prompt box -> the task's raw condition, or ValueError saying what the task expects."""
        info = self.tasks[task]
        text = (prompt or "").strip()
        if info.condition == "class":
            span = f"0..{info.num_classes - 1}" if info.num_classes else "0, 1, 2, ..."
            if not text.lstrip("-").isdigit():
                raise ValueError(
                    f"task {task!r} is class-conditioned: type a class id ({span}), not "
                    + (f"a caption ({text!r})" if text else "nothing")
                )
            label = int(text)
            if info.num_classes is not None and not 0 <= label < info.num_classes:
                raise ValueError(f"class {label} is out of range for task {task!r}: expected {span}")
            return label
        if info.condition == "text":
            if not text:
                raise ValueError(f"task {task!r} is text-conditioned: type a caption, e.g. 'a red circle'")
            if text.lstrip("-").isdigit():
                raise ValueError(
                    f"task {task!r} is text-conditioned: type a caption, not a class id ({text!r}); class ids "
                    "are for class-conditioned tasks"
                )
            return text
        if info.condition == "none":
            if text:
                raise ValueError(f"task {task!r} is unconditional: leave the prompt empty (got {text!r})")
            return None
        return text or None  # a plugin's own condition kind: passed through as typed

    def generate(
        self,
        task: str,
        prompt: str | None = None,
        *,
        steps: int | None = None,
        solver: str | None = None,
        cfg_scale: float | None = None,
        seed: int | None = None,
        shape: str | tuple[int, ...] | None = None,
        num: int = 1,
    ) -> PageResult:
        """Generate ``num`` samples for ``prompt`` with the task's sampling settings (the arguments given
        replace them), write them with the plugin's ``write_preview`` and describe them with its
        ``preview_items``. Never raises: a bad request or a failed generation is a result with a message."""
        try:
            return self._generate(task, prompt, steps, solver, cfg_scale, seed, shape, num)
        except (ValueError, FileNotFoundError, KeyError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            return PageResult(False, str(msg))
        except Exception as exc:  # noqa: BLE001 - the page must keep serving; the log gets the traceback
            log.exception("generation failed")
            return PageResult(False, f"generation failed: {type(exc).__name__}: {exc}")

    def _generate(self, task, prompt, steps, solver, cfg_scale, seed, shape, num) -> PageResult:
        from lumina_core.training.build import resolve_device

        if task not in self.tasks:
            raise ValueError(f"unknown task {task!r}; this recipe's tasks: {', '.join(self.tasks)}")
        num = int(num)
        if not 1 <= num <= MAX_SAMPLES:
            raise ValueError(f"the number of samples must be 1 to {MAX_SAMPLES}; got {num}")
        if steps is not None and int(steps) < 1:
            raise ValueError(f"steps must be at least 1; got {steps}")
        cond = self.condition_for(task, prompt)
        shp = parse_shape(shape) if isinstance(shape, str) or shape is None else tuple(int(v) for v in shape)
        with self._lock:
            if not self.load():
                return PageResult(False, str(self.load_error))
            run_task = self._parts.tasks[task]
            plugin = run_task.plugin
            given = {"steps": steps, "solver": solver, "cfg_scale": cfg_scale, "seed": seed}
            kw = run_task.sampling_settings(**{k: v for k, v in given.items() if v is not None and v != ""})
            kw["steps"], kw["cfg_scale"], kw["seed"] = int(kw["steps"]), float(kw["cfg_scale"]), int(kw["seed"])
            shapes = [shp or tuple(plugin.default_shape())] * num
            dev = self.device or resolve_device(str(self.cfg.run.device))
            t0 = time.perf_counter()
            samples, nfe = run_task.generate(
                self._parts.model, [cond] * num, shapes, device=dev, batch_size=num, return_nfe=True, **kw
            )
            seconds = time.perf_counter() - t0
            self._requests += 1
            out = self.out_dir / f"request_{self._requests:05d}"
            paths = plugin.write_preview(samples, [cond] * num, out, task)
            items = list(plugin.preview_items(paths))
        if not items:
            kinds = ", ".join(sorted({Path(p).suffix for p in paths})) or "no files"
            return PageResult(
                False,
                f"generated {num} sample(s), but the {self.tasks[task].modality!r} plugin's preview ({kinds}) has "
                f"nothing a page can show; its files are in {out}",
            )
        what = f"{task}: {num} sample(s) of shape {tuple(shapes[0])}"
        solver_name = kw["solver"].get("name") if isinstance(kw["solver"], dict) else kw["solver"]
        how = f"{solver_name}, {kw['steps']} steps ({nfe} NFE), guidance {kw['cfg_scale']:g}, seed {kw['seed']}"
        return PageResult(True, f"{what} in {seconds:.1f} s; {how}", items)
