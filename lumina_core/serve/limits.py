"""What one page request may ask, and what it will cost on this machine, known before any work starts.

A request makes ``S`` samples of ``N`` tokens each with a solver that spends ``E`` network evaluations
(``solver.nfe(steps)``; guidance evaluates the conditional and unconditional halves in one batch, so the
batch of every evaluation is ``B = S * g`` with ``g = 2`` under guidance, else 1). One evaluation of the
trunk (``P`` weights, ``L`` layers, width ``d``, ``H`` heads) on ``B`` sequences of ``N`` tokens costs

    flops(N, B) = B * N * (2 P + 4 L d N)      2 flops per weight per token; Q K^T and A V: 4 N d per token per layer

and takes ``c0 + flops * spf`` seconds here: a fixed cost per evaluation ``c0`` (Python, kernel launches) and the
seconds per flop ``spf`` are measured when the run loads (:func:`fit_cost`: timed evaluations at batch 1 and 4
of the task's trained shape). A request is then estimated at

    seconds = k * E * (c0 + flops(N, B) * spf)

where ``k`` (:class:`Observed`) is the median ratio of actual to estimated seconds of the last requests here.

and refused before it starts when it is over the page's limits (:class:`Limits`, set by the operator):
tokens per sample (default: 4x the positions the run was trained on per sample: RoPE extrapolation
beyond twice the trained side of an image is not something the run has shown it can do), samples,
steps, and estimated seconds. Memory is bounded by the machine: a kernel that materialises the attention
scores holds ``B * H * N^2 * 4`` bytes for one layer, which must fit in half of the memory available now.
"""

from __future__ import annotations

import math
import os
import statistics
from collections import deque
from dataclasses import dataclass
from pathlib import Path

#: samples a request may ask for by default (the page has this many audio / 3-D / video slots)
MAX_SAMPLES = 4
#: most samples an operator may allow (one slot per sample on the page)
MAX_SAMPLES_CEILING = 16
#: most requests an operator may let wait (each waiting request holds one of the server's worker threads)
MAX_WAITING_CEILING = 32
#: default bound on tokens per sample, as a multiple of the tokens the run was trained on per sample
TOKEN_FACTOR = 4
#: network evaluations assumed for an adaptive solver (dopri5 does not take a step count; about 100 at its
#: default tolerances is typical here, docs/benchmarks.md measures 200 at 1e-7). The run-time deadline,
#: twice the page's seconds limit, stops one that needs far more.
ADAPTIVE_NFE = 100


@dataclass(frozen=True)
class Limits:
    """The operator's bounds on one request (``lumina serve --max-tokens ... --max-seconds ...``).

    Attributes:
        max_tokens: tokens per sample; None: ``TOKEN_FACTOR`` x the tokens each task was trained on.
        max_samples: samples per request (the page shows one slot per sample).
        max_steps: solver steps per request.
        max_seconds: estimated compute seconds of one request on this machine; a running request is
            stopped at twice this (the estimate can be wrong, e.g. for an adaptive solver).
        max_waiting: requests that may wait behind the running one; more are refused with "busy".
    """

    max_tokens: int | None = None
    max_samples: int = MAX_SAMPLES
    max_steps: int = 100
    max_seconds: float = 60.0
    max_waiting: int = 8

    def __post_init__(self) -> None:
        problems = []
        for name in ("max_tokens", "max_steps", "max_waiting"):
            value = getattr(self, name)
            if value is not None and int(value) < (0 if name == "max_waiting" else 1):
                problems.append(
                    f"--{name.replace('_', '-')} must be at least {0 if name == 'max_waiting' else 1}, got {value}"
                )
        if int(self.max_waiting) > MAX_WAITING_CEILING:
            problems.append(f"--max-waiting must be at most {MAX_WAITING_CEILING}, got {self.max_waiting}")
        if not 1 <= int(self.max_samples) <= MAX_SAMPLES_CEILING:
            problems.append(f"--max-samples must be 1 to {MAX_SAMPLES_CEILING}, got {self.max_samples}")
        if not (math.isfinite(float(self.max_seconds)) and float(self.max_seconds) > 0):
            problems.append(f"--max-seconds must be a positive number, got {self.max_seconds}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class CostModel:
    """Seconds of one evaluation of the trunk on this machine (see the module doc for the formula)."""

    params: int  # P: weights of the model
    layers: int  # L
    dim: int  # d
    heads: int  # H
    overhead_s: float  # c0: fixed seconds per evaluation
    seconds_per_flop: float  # spf

    def flops(self, tokens: int, batch: int) -> float:
        return float(batch) * tokens * (2.0 * self.params + 4.0 * self.layers * self.dim * tokens)

    def eval_seconds(self, tokens: int, batch: int) -> float:
        return self.overhead_s + self.flops(tokens, batch) * self.seconds_per_flop

    def attention_bytes(self, tokens: int, batch: int) -> float:
        return 4.0 * batch * self.heads * float(tokens) ** 2


def fit_cost(
    params: int, layers: int, dim: int, heads: int, tokens: int, seconds_b1: float, seconds_b4: float
) -> CostModel:
    """The cost model from two measured evaluation times at ``tokens`` per sample: batch 1 and batch 4.

    ``t(B) = c0 + B f spf`` with ``f = flops(tokens, 1)`` gives ``spf = (t4 - t1) / (3 f)`` and
    ``c0 = t1 - f spf``. Timing noise can make the difference useless (``t4 <= t1``); then all of ``t4`` is
    charged to the flops (``c0 = 0``, ``spf = t4 / 4f``), which overestimates large requests, the safe side."""
    probe = CostModel(params, layers, dim, heads, 0.0, 0.0)
    f = probe.flops(tokens, 1)
    spf = (seconds_b4 - seconds_b1) / (3.0 * f) if f > 0 else 0.0
    if spf <= 0 or spf * f > seconds_b1:
        return CostModel(params, layers, dim, heads, 0.0, max(seconds_b4, seconds_b1) / (4.0 * f))
    return CostModel(params, layers, dim, heads, max(0.0, seconds_b1 - f * spf), spf)


class Observed:
    """How far off the cost model has been here: the median of ``actual / estimated`` seconds over the last
    ``keep`` requests that ran to the end (1 before any). The calibration is a moment; a machine whose load
    changes (other jobs, thermal limits) makes every later estimate off by about the same factor, so
    estimates are multiplied by this one."""

    def __init__(self, keep: int = 8) -> None:
        self._ratios: deque[float] = deque(maxlen=keep)

    def observe(self, estimated_s: float, actual_s: float) -> None:
        if estimated_s > 0 and actual_s > 0 and math.isfinite(actual_s / estimated_s):
            self._ratios.append(actual_s / estimated_s)

    @property
    def factor(self) -> float:
        return statistics.median(self._ratios) if self._ratios else 1.0


@dataclass(frozen=True)
class Estimate:
    """What one request will take: ``evals`` network evaluations of ``batch`` sequences of ``tokens``."""

    tokens: int  # per sample
    samples: int
    evals: int
    batch: int  # sequences per evaluation (samples, doubled under guidance)
    seconds: float
    attention_bytes: float

    def describe(self) -> str:
        guided = " (guidance doubles the batch)" if self.batch > self.samples else ""
        return (
            f"{self.samples} sample(s) x {self.tokens} tokens, {self.evals} network evaluations{guided}: "
            f"about {_seconds(self.seconds)} on this machine"
        )


def estimate(
    cost: CostModel, tokens: int, samples: int, evals: int, guided: bool, factor: float = 1.0
) -> Estimate:
    """The cost of ``evals`` evaluations of ``samples`` x ``tokens`` (doubled under guidance), times the
    correction ``factor`` (:class:`Observed`)."""
    batch = samples * (2 if guided else 1)
    return Estimate(
        tokens,
        samples,
        evals,
        batch,
        factor * evals * cost.eval_seconds(tokens, batch),
        cost.attention_bytes(tokens, batch),
    )


def refusal(
    est: Estimate, max_tokens: int, trained_tokens: int, limits: Limits, memory: int | None
) -> str | None:
    """One line saying why the request is over a limit and what to ask instead, or None if it fits."""
    if est.tokens > max_tokens:
        how = (
            "set by the operator (--max-tokens)"
            if limits.max_tokens is not None
            else f"{TOKEN_FACTOR}x the {trained_tokens} the run was trained on per sample; the operator can change it with --max-tokens"
        )
        return (
            f"too large for this page: that shape is {est.tokens} tokens per sample, the limit is {max_tokens} "
            f"({how}); ask for a smaller shape"
        )
    if est.seconds > limits.max_seconds:
        return (
            f"too slow for this page: {est.describe()}, the limit is {_seconds(limits.max_seconds)} per request "
            "(--max-seconds); ask for fewer steps or samples, or a smaller shape"
        )
    if memory is not None and est.attention_bytes > memory / 2:
        return (
            f"too large for this machine's memory: {est.samples} sample(s) of {est.tokens} tokens need up to "
            f"{est.attention_bytes / 2**30:.1f} GiB for attention, and {memory / 2**30:.1f} GiB are available "
            "(half may be used); ask for fewer samples or a smaller shape"
        )
    return None


def available_memory(device: str) -> int | None:
    """Bytes of memory free now on ``device`` (a CUDA device's free memory; else the system's MemAvailable),
    or None where it cannot be read."""
    if str(device).startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        return None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.0f} h"
