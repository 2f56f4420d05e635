"""What the demo page does, without the page: load a trained run once, turn a page request into samples.

    session = ServeSession(cfg, "last")            # loads the run (or remembers why it could not)
    result = session.generate("shapes", "a red circle on the left", steps=10, num=2)
    result.ok, result.message, result.items        # items: PreviewItem(kind, path, label), by the plugin

Loading and sampling reuse the public API: :func:`lumina_core.training.weights.load_run` for the weights (EMA by
default, like previews and evaluation) and :func:`lumina_core.sampling.generate` with the task's recipe
sampling settings, which the page's fields override. The files come from the task plugin's
``write_preview`` and are described for the page by its ``preview_items`` (the plugin contract), so an
external plugin needs nothing else to get a page.

Nothing a person types may stop the server: every failure of a request becomes a :class:`PageResult` with
``ok=False`` and a message written for that person (one line in the server's log; a traceback only for a
failure inside generation). A run with no checkpoint yet is reported the same way and tried again on the
next request, so a page started beside a training run works once the first checkpoint lands.

Nothing a person asks may hold the server either: a request is checked against the page's
:class:`~lumina_core.serve.limits.Limits` and its cost estimated on this machine before it starts
(:meth:`ServeSession.prepare`); the page's requests run one at a time on a
:class:`~lumina_core.serve.jobs.JobQueue` (:meth:`ServeSession.submit`), and a running one stops between two
network evaluations when it is cancelled, when its client goes, or at its deadline.
"""

from __future__ import annotations

import logging
import math
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lumina_core.plugin import PreviewItem
from lumina_core.serve.jobs import Cancelled, JobQueue, Ticket
from lumina_core.serve.limits import (
    ADAPTIVE_NFE,
    TOKEN_FACTOR,
    CostModel,
    Estimate,
    Limits,
    Observed,
    available_memory,
    estimate,
    fit_cost,
    refusal,
)

if TYPE_CHECKING:
    from lumina_core.sampling.settings import SamplingSettings

log = logging.getLogger("lumina.serve")

#: longest shape text and largest size on one axis a request may type (the token limit refuses far less)
MAX_SHAPE_CHARS, MAX_SIDE = 100, 1_000_000
#: longest prompt a request may type (captions are a sentence; the text encoders truncate far below this)
MAX_PROMPT_CHARS = 1000


@dataclass(frozen=True)
class TaskInfo:
    """What the page needs to know about one task of the recipe, read from the recipe alone (its
    :class:`~lumina_core.training.task_facts.TaskFacts`)."""

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
    from lumina_core.training.task_facts import TaskFacts

    f = TaskFacts.of(task)
    return TaskInfo(f.name, f.modality, f.condition_kind, f.num_classes, dict(f.sampling_defaults))


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """``"3, 48, 64"`` (or ``3x48x64``) -> ``(3, 48, 64)``; empty -> None (the plugin's default shape)."""
    text = str(text or "").strip().strip("()[]")
    if not text:
        return None
    if len(text) > MAX_SHAPE_CHARS:
        raise ValueError(f"the shape is {len(text)} characters; a shape is a few numbers, e.g. '3, 32, 32'")
    parts = [p for p in text.replace("x", ",").replace(" ", ",").split(",") if p]
    if not parts or not all(p.isdigit() and 0 < int(p) <= MAX_SIDE for p in parts):
        raise ValueError(
            f"the shape must be positive integers separated by commas (each at most {MAX_SIDE}), e.g. "
            f"'3, 32, 32'; got {text!r}"
        )
    return tuple(int(p) for p in parts)


def _whole(what: str, value: Any, low: int, high: int, hint: str = "") -> int:
    """A whole number from a page field (a float, an int or text) in ``[low, high]``, or a one-line ValueError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number.is_integer() and low <= number <= high):
        raise ValueError(f"{what} must be a whole number from {low} to {high}{hint}; got {value!r}")
    return int(number)


@dataclass(frozen=True)
class Request:
    """A checked request, ready to run: what to make, with which settings, and what it will cost."""

    task: str
    condition: Any
    shape: tuple[int, ...]
    num: int
    settings: SamplingSettings  # the task's sampling settings with the page's fields applied
    estimate: Estimate
    factor: float = 1.0  # the correction the estimate was made with (Observed.factor)


class ServeSession:
    """A trained run ready to sample from, for the page (or any caller wanting files plus their kinds).

    Args:
        cfg: the recipe (a DictConfig or dict) the run was trained with.
        checkpoint: a checkpoint or run directory, or ``"last"`` (the recipe run's newest checkpoint).
        out_dir: where each request's files go (one sub-folder per request); default a fresh temporary folder.
        device: torch device (default: the recipe's ``run.device``).
        weights: ``"ema"`` (default) or ``"model"``.
        limits: the operator's bounds on one request (default :class:`Limits`()).
        abandon_s: a queued request whose client has not asked for it for this long is cancelled.
        recalibrate_s: a cost measured longer ago than this is measured again (when the model is free) before a
            request is refused as too slow: a load on the machine at that moment may have made every estimate
            too high.
    """

    def __init__(
        self,
        cfg: Any,
        checkpoint: str | Path | None = "last",
        out_dir: str | Path | None = None,
        device: str | None = None,
        weights: str = "ema",
        limits: Limits | None = None,
        abandon_s: float = 10.0,
        recalibrate_s: float = 30.0,
    ) -> None:
        from lumina_core.config.typed import typed_recipe

        self.cfg = typed_recipe(cfg)
        self.checkpoint = checkpoint or "last"
        self.device = device
        self.weights = weights
        self.limits = limits or Limits()
        self.abandon_s = float(abandon_s)
        self.recalibrate_s = float(recalibrate_s)
        self._temporary_out = not out_dir  # a folder of our own: removed on close when nothing was written
        self.out_dir = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="lumina-serve-"))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.tasks = {str(t.name): _task_info(t) for t in self.cfg.tasks}
        self.jobs = JobQueue(self.limits.max_waiting)
        self.cost: CostModel | None = None  # measured when the run loads (_calibrate)
        self.observed = Observed()  # how far off the estimates have been here
        self._calibrated_at = -math.inf
        self._lock = threading.Lock()  # one generation at a time on the model
        self._load_lock = threading.Lock()
        self._parts: Any = None  # the loaded run (lumina_core.training.build.RunParts)
        self._requests = 0
        self._tokens: dict[tuple[str, tuple[int, ...]], int] = {}
        self._examples: dict[str, list[str]] = {}
        self.load_error: str | None = None
        self.load()

    # -- loading ---------------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._parts is not None

    def load(self) -> bool:
        """Load the run's weights (once) and measure its cost here; on failure remember a message for the page
        and return False."""
        with self._load_lock:
            if self._parts is not None:
                return True
            from lumina_core.training.weights import load_run

            try:
                self._parts = load_run(self.cfg, self.checkpoint, weights=self.weights, device=self.device)
                self.load_error = None
                log.info("loaded %s (checkpoint %s)", self.cfg.run.output_dir, self.checkpoint)
            except (FileNotFoundError, ValueError) as exc:
                self.load_error = (
                    f"no trained model to sample from yet: {exc}. Train the recipe first "
                    f"(`lumina train RECIPE`), then submit again - the page keeps running."
                )
                return False
            self.cost = self._calibrate()
            return True

    @property
    def _device(self) -> str:
        from lumina_core.training.build import resolve_device

        return self.device or resolve_device(str(self.cfg.run.device))

    def _calibrate(self) -> CostModel:
        """Time evaluations of the trunk at batch 1 and 4 of the first generative task's trained shape
        (:func:`~lumina_core.serve.limits.fit_cost`)."""
        model = self._parts.model
        conf = getattr(model, "config", None)
        layers, dim, heads = (int(getattr(conf, k, 1) or 1) for k in ("n_layers", "dim", "n_heads"))
        params = sum(p.numel() for p in model.parameters())
        name = next((n for n, t in self._parts.tasks.items() if t.generative), None)
        if name is None:  # a run of classification tasks only: nothing to generate
            return CostModel(params, layers, dim, heads, 0.0, 0.0)
        shape = tuple(int(v) for v in self._parts.tasks[name].plugin.default_shape())
        tokens = self.tokens_of(name, shape)
        t1, t4 = (self._time_evaluation(name, shape, b) for b in (1, 4))
        cost = fit_cost(params, layers, dim, heads, tokens, t1, t4)
        self._calibrated_at = time.monotonic()
        self.observed = Observed()  # ratios to an earlier measurement no longer apply
        log.info("cost here: %.2g s per evaluation + %.3g s per Gflop (%s, %d tokens: %.3g s at batch 1, %.3g s at 4)",
                 cost.overhead_s, cost.seconds_per_flop * 1e9, name, tokens, t1, t4)  # fmt: skip
        return cost

    def _time_evaluation(self, name: str, shape: tuple[int, ...], batch: int, steps: int = 5) -> float:
        """The fewest seconds between two successive network evaluations of an Euler run at ``batch`` x
        ``shape`` (other work on the machine only ever adds time; requests that then take longer raise the
        estimates through :attr:`observed`)."""
        from lumina_core.sampling import generate

        run_task = self._parts.tasks[name]
        stamps: list[float] = []
        settings = run_task.sampling_settings(
            steps=steps, solver={"name": "euler"}, grid={"name": "uniform"}, cfg_scale=1.0
        )
        null = run_task.null_condition
        with self._lock:
            generate(self._parts.model, run_task.plugin, run_task.conditioner, name, [null] * batch,
                     shapes=[shape] * batch, device=self._device,
                     hooks=[lambda step, t: stamps.append(time.perf_counter())], settings=settings)  # fmt: skip
        return min(b - a for a, b in zip(stamps, stamps[1:], strict=False))

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
                if self._parts is not None and task in self._parts.tasks:
                    built = self._parts.tasks[task]
                else:
                    built = build_task(next(t for t in self.cfg.tasks if str(t.name) == task))
                found = built.example_conditions(limit)
            except Exception as exc:  # noqa: BLE001 - examples are a convenience (e.g. data not on this machine)
                log.info("no examples for task %s: %s: %s", task, type(exc).__name__, exc)
        self._examples[task] = found
        return found

    # -- limits -----------------------------------------------------------------------------------------
    def tokens_of(self, task: str, shape: tuple[int, ...]) -> int:
        """Tokens of one sample of ``shape`` (the plugin's ``layout``); a shape far beyond the limit is counted
        from its size relative to the default shape instead, so nothing large is allocated to refuse it."""
        key = (task, tuple(shape))
        if key not in self._tokens:
            plugin = self._parts.tasks[task].plugin
            default = tuple(int(v) for v in plugin.default_shape())
            if default != tuple(shape) and len(default) == len(shape):
                rough = self.tokens_of(task, default) * math.prod(shape) / math.prod(default)
                if rough > 16 * self.max_tokens(task):
                    return int(rough)
            if len(self._tokens) >= 256:  # shapes come from clients: keep the cache bounded
                self._tokens.clear()
            self._tokens[key] = int(plugin.layout([tuple(shape)]).lengths[0])
        return self._tokens[key]

    def trained_tokens(self, task: str) -> int:
        """Positions per sample the task was trained on: the product of its ``AdapterSpec.train_extent``, or the
        tokens of its default shape where the plugin gives no extent (e.g. unordered point clouds)."""
        plugin = self._parts.tasks[task].plugin
        extent = plugin.adapter_spec().train_extent
        if extent:
            return int(round(math.prod(extent)))
        return self.tokens_of(task, tuple(int(v) for v in plugin.default_shape()))

    def max_tokens(self, task: str) -> int:
        return int(self.limits.max_tokens or TOKEN_FACTOR * self.trained_tokens(task))

    def limits_text(self, task: str) -> str:
        """The page's limits for ``task``, for people."""
        lim = self.limits
        text = f"up to {lim.max_samples} samples, {lim.max_steps} steps"
        if self.loaded and task in self._parts.tasks and self._parts.tasks[task].generative:
            text += f", {self.max_tokens(task)} tokens per sample (trained on {self.trained_tokens(task)})"
        return text + f" and about {lim.max_seconds:g} s of compute per request on this machine"

    # -- a request --------------------------------------------------------------------------------------
    def condition_for(self, task: str, prompt: str | None) -> Any:
        """The page's prompt box -> the task's raw condition, or ValueError saying what the task expects."""
        info = self.tasks[task]
        text = str(prompt or "").strip()
        if len(text) > MAX_PROMPT_CHARS:
            raise ValueError(f"the prompt is {len(text)} characters; the page takes up to {MAX_PROMPT_CHARS}")
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

    def prepare(
        self,
        task: str,
        prompt: str | None = None,
        *,
        steps: Any = None,
        solver: str | None = None,
        cfg_scale: Any = None,
        seed: Any = None,
        shape: str | tuple[int, ...] | None = None,
        num: Any = 1,
    ) -> Request:
        """Check a request against the task and the page's limits and estimate its cost here. Raises
        ValueError (or KeyError for an unknown solver) with one line for the person who asked, or
        FileNotFoundError when there is no trained model yet."""
        lim = self.limits
        if task not in self.tasks:
            raise ValueError(f"unknown task {task!r}; this recipe's tasks: {', '.join(self.tasks)}")
        num = _whole("the number of samples", num, 1, lim.max_samples, " (the page's limit, --max-samples)")
        given: dict[str, Any] = {"solver": solver or None}
        if steps is not None and steps != "":
            given["steps"] = _whole("steps", steps, 1, lim.max_steps, " (the page's limit, --max-steps)")
        if seed is not None and seed != "":
            given["seed"] = _whole("the seed", seed, 0, 2**63 - 1)
        if cfg_scale is not None and cfg_scale != "":
            try:
                given["cfg_scale"] = float(cfg_scale)
            except (TypeError, ValueError):
                given["cfg_scale"] = math.nan
            if not (math.isfinite(given["cfg_scale"]) and given["cfg_scale"] >= 0):
                raise ValueError(f"the guidance scale must be a number of at least 0; got {cfg_scale!r}")
        cond = self.condition_for(task, prompt)
        shp = parse_shape(shape) if isinstance(shape, str) or shape is None else tuple(int(v) for v in shape)
        if not self.load():
            raise FileNotFoundError(str(self.load_error))
        run_task = self._parts.tasks[task]
        if not run_task.generative:
            raise ValueError(
                f"task {task!r} is a classification task: it generates nothing; use `lumina predict` to "
                "classify files, or pick a generative task"
            )
        settings = run_task.sampling_settings(**{k: v for k, v in given.items() if v is not None})
        steps = int(settings.steps or 0)
        if steps > lim.max_steps:  # the recipe's own steps are over the operator's limit
            raise ValueError(
                f"steps must be a whole number from 1 to {lim.max_steps} (--max-steps); got {steps}"
            )
        shp = shp or tuple(int(v) for v in run_task.plugin.default_shape())
        solver_obj = settings.solver
        evals = ADAPTIVE_NFE if solver_obj.adaptive else int(solver_obj.nfe(steps))
        guided = settings.guidance.active and run_task.condition_kind != "none"
        tokens = self.tokens_of(task, shp)
        est = estimate(self.cost, tokens, num, evals, guided, self.observed.factor)
        if est.seconds > lim.max_seconds and self._stale_cost():  # measure again before saying "too slow"
            self.cost = self._calibrate()
            est = estimate(self.cost, tokens, num, evals, guided, self.observed.factor)
        why = refusal(
            est, self.max_tokens(task), self.trained_tokens(task), lim, available_memory(self._device)
        )
        if why:
            raise ValueError(f"shape {shp}: {why}" if "tokens per sample" in why else why)
        return Request(task, cond, shp, num, settings, est, self.observed.factor)

    def generate(self, task: str, prompt: str | None = None, **request: Any) -> PageResult:
        """Check and run one request now, in this thread (keywords as :meth:`prepare`): ``num`` samples for
        ``prompt`` with the task's sampling settings (the arguments given replace them), written with the
        plugin's ``write_preview`` and described with its ``preview_items``. Never raises: a refused, bad or
        failed request is a result with a message. (The page uses :meth:`submit` instead.)"""
        try:
            req = self.prepare(task, prompt, **request)
        except (ValueError, FileNotFoundError, KeyError) as exc:
            return self._refused(exc)
        except Exception as exc:  # noqa: BLE001 - a request the checks did not foresee: said, logged
            log.exception("checking a request failed")
            return PageResult(False, f"could not check the request: {type(exc).__name__}: {exc}")
        ticket = Ticket(None, req.estimate.seconds, req.estimate.evals, self._deadline(), math.inf)
        ticket.started = time.monotonic()
        return self._run(req, ticket)

    def submit(
        self, task: str, prompt: str | None = None, *, owner: str | None = None, **request: Any
    ) -> Ticket:
        """Check a request and queue it for the worker; a refused one is a ticket already done with its message.
        ``owner`` (the page's session) is what :meth:`cancel` cancels by."""
        try:
            req = self.prepare(task, prompt, **request)
            return self.jobs.submit(
                lambda ticket: self._run(req, ticket), req.estimate.seconds, req.estimate.evals, owner,
                deadline_s=self._deadline(), abandon_s=self.abandon_s,
            )  # fmt: skip
        except (ValueError, FileNotFoundError, KeyError) as exc:
            result = self._refused(exc)
        except Exception as exc:  # noqa: BLE001 - a request the checks did not foresee: said, logged
            log.exception("checking a request failed")
            result = PageResult(False, f"could not check the request: {type(exc).__name__}: {exc}")
        done = Ticket(owner, 0.0, 0, 0.0, math.inf)
        done.finish(result)
        return done

    def cancel(self, owner: str | None) -> int:
        """Cancel the unfinished requests of ``owner``; return how many."""
        return self.jobs.cancel(owner, "cancelled on the page")

    @staticmethod
    def result(ticket: Ticket) -> PageResult:
        """The outcome of a finished ticket as a page result."""
        r = ticket.result
        if isinstance(r, PageResult):
            return r
        if isinstance(r, Cancelled):
            return PageResult(False, str(r))
        return PageResult(False, f"generation failed: {type(r).__name__}: {r}")

    def progress(self, ticket: Ticket) -> str:
        """One line about a ticket still running or waiting."""
        line = self.running_line(ticket)
        if line is not None:
            return line
        ahead, secs = self.jobs.ahead_of(ticket)
        return f"waiting: {ahead} request(s) ahead (about {secs:.0f} s); this one about {ticket.estimate_s:.1f} s"

    @staticmethod
    def running_line(ticket: Ticket) -> str | None:
        """The line of a ticket being cancelled or running; None while it waits (uncancelled)."""
        if ticket.cancel_reason is not None:
            return f"cancelling: {ticket.cancel_reason}; it stops at the next network evaluation"
        if ticket.started is None:
            return None
        return (
            f"generating: {ticket.evals_done} of {ticket.evals} network evaluations, {ticket.elapsed():.0f} s "
            f"(estimated {ticket.estimate_s:.1f} s)"
        )

    def health(self) -> dict[str, Any]:
        """The server's state, for ``/gradio_api/run/health``: loaded or why not, the queue, the limits."""
        lim = self.limits
        return {
            "ok": True,
            "loaded": self.loaded,
            "load_error": self.load_error,
            **self.jobs.snapshot(),
            "limits": {
                "max_samples": lim.max_samples, "max_steps": lim.max_steps, "max_seconds": lim.max_seconds,
                "max_waiting": lim.max_waiting,
                "max_tokens": {t: self.max_tokens(t) for t in self.tasks if self.loaded and self._parts.tasks[t].generative},
            },
        }  # fmt: skip

    def close(self) -> None:
        """Stop the request queue; remove the temporary files folder if no request wrote into it."""
        self.jobs.close()
        if self._temporary_out and self.out_dir.is_dir() and not any(self.out_dir.iterdir()):
            self.out_dir.rmdir()

    def _stale_cost(self) -> bool:
        """Whether the cost was measured more than ``recalibrate_s`` ago and the model is free to measure it
        again now."""
        return time.monotonic() - self._calibrated_at > self.recalibrate_s and not self._lock.locked()

    def _deadline(self) -> float:
        return 2.0 * self.limits.max_seconds

    @staticmethod
    def _refused(exc: BaseException) -> PageResult:
        msg = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
        log.warning("lumina serve: refused a request: %s", msg)
        return PageResult(False, msg)

    def _run(self, req: Request, ticket: Ticket) -> PageResult:
        """Generate a checked request; stops between evaluations when ``ticket`` says so. Never raises."""
        from lumina_core.sampling import generate

        task, num, settings = req.task, req.num, req.settings
        try:
            with self._lock:
                run_task = self._parts.tasks[task]
                plugin = run_task.plugin
                t0 = time.perf_counter()
                samples, nfe = generate(
                    self._parts.model, plugin, run_task.conditioner, task, [req.condition] * num, shapes=[req.shape] * num,
                    settings=settings, device=self._device, return_nfe=True, hooks=[ticket.check],
                )  # fmt: skip
                samples = [x.detach().float().cpu() for x in samples]
                seconds = time.perf_counter() - t0
                self.observed.observe(req.estimate.seconds / req.factor, seconds)
                self._requests += 1
                out = self.out_dir / f"request_{self._requests:05d}"
                paths = plugin.write_preview(samples, [req.condition] * num, out, task)
                items = list(plugin.preview_items(paths))
        except Cancelled as exc:
            log.warning("lumina serve: %s", exc)
            return PageResult(False, str(exc))
        except (ValueError, KeyError) as exc:  # e.g. a shape the plugin cannot make
            return self._refused(exc)
        except Exception as exc:  # noqa: BLE001 - the page must keep serving; the log gets the traceback
            log.exception("generation failed")
            return PageResult(False, f"generation failed: {type(exc).__name__}: {exc}")
        if not items:
            kinds = ", ".join(sorted({Path(p).suffix for p in paths})) or "no files"
            return PageResult(
                False,
                f"generated {num} sample(s), but the {self.tasks[task].modality!r} plugin's preview ({kinds}) has "
                f"nothing a page can show; its files are in {out}",
            )
        what = f"{task}: {num} sample(s) of shape {tuple(req.shape)}"
        solver = settings.spec["solver"]
        solver_name = solver.get("name") if isinstance(solver, dict) else solver
        how = (
            f"{solver_name}, {settings.steps} steps ({nfe} NFE), guidance {settings.guidance.scale:g}, "
            f"seed {settings.seed}"
        )
        return PageResult(
            True, f"{what} in {seconds:.1f} s (estimated {req.estimate.seconds:.1f} s); {how}", items
        )
