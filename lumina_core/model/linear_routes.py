"""Which kernel multiplies the trunk's products (:mod:`lumina_core.model.linear`): the linear backend, set by
:func:`set_linear_backend`, :func:`linear_backend` for a block, or ``LUMINA_LINEAR_BACKEND`` in the
environment; the fixed rule of the default ``"auto"``; the opt-in per-shape timed choice ``"timed"``
(:func:`linear_routes`, :func:`clear_linear_routes`); and whether oneDNN applies to given operands
(:func:`onednn_dtype`, :func:`uses_onednn`). The chosen backend, the oneDNN op and the timed choices live here
and nowhere else; :mod:`lumina_core.model.linear` holds the kernels and modules that ask.

Mathematically nothing changes; what changes is which kernel multiplies. On CPU, fp32, PyTorch's ``F.linear``
calls the BLAS ``sgemm`` (MKL in the PyPI wheels); oneDNN's matmul primitive
(``torch.ops.mkldnn._linear_pointwise``, the op PyTorch's own CPU compiler backend emits) was 7-27 % faster
(mostly about 10 %) on the trunk's shapes on our AMD EPYC (AVX-512) machine (``benchmarks/backbone.py
--kernels``), and it fuses elementwise work into the product (the SiLU and the gate of the SwiGLU, the sums
of the backward passes: :mod:`lumina_core.model.linear`).

bf16: under CPU autocast with ``dtype=torch.bfloat16`` (fp32 weights, as in mixed-precision training) or
with bf16 operands (a bf16 model), the same kernels run in bf16 on CPUs whose oneDNN has bf16 support
(AVX-512 bf16 / AMX; :func:`onednn_dtype`). On our CPU the bf16 route is as fast as PyTorch's bf16
``F.linear`` (which runs oneDNN's matmul itself), not faster: figures in docs/benchmarks.md.

The plain PyTorch ops are used instead whenever oneDNN does not apply: not a CPU tensor, a dtype other than
fp32 or bf16 (or autocast to another dtype, or bf16 without oneDNN bf16 support), ``torch.compile`` tracing
(the compiler picks its own kernels), a PyTorch without oneDNN, or the backend set to ``"torch"``
(:func:`set_linear_backend`, :func:`linear_backend` for a block, or ``LUMINA_LINEAR_BACKEND=torch`` in the
environment). The backend ``"blas"`` keeps the fused routes and hand-written backward passes of
:mod:`lumina_core.model.linear` in fp32 but runs every product through PyTorch's GEMM (MKL ``sgemm`` in the
PyPI wheels) instead of oneDNN: on an Intel Xeon (the shared machine in December 2026) oneDNN's fp32 products
were 6-15 % slower than ``sgemm`` on the trunk's shapes, the reverse of the AMD EPYC above
(docs/benchmarks.md, unified trunk section); bf16 and other devices take the plain ops under ``"blas"``.
``"onednn"`` runs every CPU product through oneDNN.

The default, ``"auto"``, is a fixed rule, so every process on a machine takes the same kernels (a resumed run
continues bit for bit, and two runs of one seed agree): CPU fp32 products go through BLAS on Intel CPUs (MKL
``sgemm`` was faster on the trunk's shapes of an Intel Xeon: 16 of 16 forward and 10 of 14 backward product
shapes when timed) and through oneDNN elsewhere (faster on the AMD EPYC above); bf16 through oneDNN.
``"timed"`` (opt-in) picks per product in fp32 instead: the first product of each kind and shape (``x W^T``,
``other + x W^T``, ``g W``, ``other + g W``, the no-grad SwiGLU hidden layer; rows to four significant bits,
inner size, output width, thread count) is timed both ways, oneDNN and BLAS (one warm-up call each, then three
alternating calls, the fastest call of each counting), and the faster route is kept for the rest of the
process (:func:`linear_routes`, :func:`clear_linear_routes`), as ``torch.backends.cudnn.benchmark`` does for
convolutions. A shape's first product costs about eight products more, once; the choice can differ between
processes (timing noise on near ties), so two processes may differ at float rounding - which is why it is not
the default. ``LUMINA_LINEAR_BACKEND`` (or :func:`set_linear_backend`) chooses.
All routes agree to float rounding (about 1e-6 relative in fp32, bf16 rounding in bf16);
``tests/core/model/test_linear_routes.py`` checks the choice, ``test_linear.py`` and ``tests/core/model/``
values and gradients.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

_BACKENDS = ("auto", "timed", "torch", "blas", "onednn")
_backend = os.environ.get("LUMINA_LINEAR_BACKEND", "auto")
if _backend not in _BACKENDS:
    raise ValueError(f"LUMINA_LINEAR_BACKEND must be one of {_BACKENDS}; got {_backend!r}")


def set_linear_backend(name: str) -> None:
    """``"auto"`` (default: CPU fp32 products by BLAS on Intel CPUs, by oneDNN elsewhere; CPU bf16 by oneDNN),
    ``"timed"`` (CPU fp32 products by oneDNN or BLAS, whichever was faster for that product's shape when first
    timed in this process, :func:`linear_routes`), ``"onednn"`` (every CPU product by oneDNN), ``"blas"`` (CPU
    fp32: the fused routes and hand-written backward passes of :mod:`lumina_core.model.linear`, with every
    product through PyTorch's BLAS GEMM; bf16 and other devices as ``"torch"``) or ``"torch"`` (always
    ``F.linear``)."""
    global _backend
    if name not in _BACKENDS:
        raise ValueError(f"linear backend must be one of {_BACKENDS}; got {name!r}")
    _backend = name


@contextlib.contextmanager
def linear_backend(name: str) -> Iterator[None]:
    """Within the block the backend is ``name`` (see :func:`set_linear_backend`); restored on exit."""
    previous = _backend
    set_linear_backend(name)
    try:
        yield
    finally:
        set_linear_backend(previous)


def _onednn_op():
    try:
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return None


#: oneDNN's product op (``torch.ops.mkldnn._linear_pointwise``), None without oneDNN; the kernels of
#: :mod:`lumina_core.model.linear` call it as ``linear_routes._LP``
_LP = _onednn_op() if torch.backends.mkldnn.is_available() else None


def _bf16_supported() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


_BF16 = _LP is not None and _bf16_supported()


def onednn_dtype(*tensors: Tensor | None) -> torch.dtype | None:
    """The dtype in which :func:`~lumina_core.model.linear.linear`, :func:`~lumina_core.model.linear.split_linear`
    and :func:`~lumina_core.model.linear.swiglu` multiply these operands through oneDNN: ``torch.float32`` (fp32
    operands, autocast off), ``torch.bfloat16`` (CPU autocast to bf16 with fp32/bf16 operands, or bf16 operands,
    when this CPU's oneDNN supports bf16), or None (plain PyTorch)."""
    if _backend == "torch" or torch.compiler.is_compiling():
        return None
    ts = [t for t in tensors if t is not None]
    if any(t.device.type != "cpu" for t in ts):
        return None
    dtypes = {t.dtype for t in ts}
    if _backend == "blas":  # fp32 only: the fused routes with BLAS products
        return torch.float32 if dtypes == {torch.float32} and not torch.is_autocast_enabled("cpu") else None
    if _LP is None:
        return None
    if torch.is_autocast_enabled("cpu"):
        if torch.get_autocast_dtype("cpu") != torch.bfloat16 or not _BF16:
            return None
        return torch.bfloat16 if dtypes <= {torch.float32, torch.bfloat16} else None
    if dtypes == {torch.float32}:
        return torch.float32
    if dtypes == {torch.bfloat16} and _BF16:
        return torch.bfloat16
    return None


def uses_onednn(*tensors: Tensor | None) -> bool:
    """True when :func:`~lumina_core.model.linear.linear`, :func:`~lumina_core.model.linear.split_linear` and
    :func:`~lumina_core.model.linear.swiglu` take the oneDNN path for these operands."""
    return onednn_dtype(*tensors) is not None


# -- the timed choice between oneDNN and BLAS (backend "timed", CPU fp32) ------------------------------------
#: (product kind, rows (bucketed, :func:`_row_bucket`), inner size, output width, threads) -> "onednn" or "blas",
#: chosen once per process
_ROUTES: dict[tuple[str, int, int, int, int], str] = {}
#: each route is timed this many times (after one warm-up call each, alternating), the fastest call counts
_TRIALS = 3


def linear_routes() -> dict[tuple[str, int, int, int, int], str]:
    """The routes chosen so far under ``"timed"`` (a copy): (product kind, rows, inner size, output width,
    threads) -> ``"onednn"`` or ``"blas"``."""
    return dict(_ROUTES)


def clear_linear_routes() -> None:
    """Forget the timed choices: the next product of each shape is timed again."""
    _ROUTES.clear()


def _route(kind: str, x: Tensor, n_out: int, onednn, blas) -> Tensor:
    """The result of ``onednn()`` or ``blas()`` (the same product by two kernels) for this backend.

    ``"blas"`` (or a PyTorch without oneDNN) takes BLAS and ``"onednn"`` oneDNN; bf16 always takes oneDNN.
    ``"auto"`` (fp32) takes BLAS on an Intel CPU and oneDNN elsewhere (:func:`intel_cpu`). ``"timed"`` (fp32)
    takes the route recorded for this product's kind and shape in :data:`_ROUTES`; the first
    product of a shape times both (one warm-up call each, then :data:`_TRIALS` alternating calls, the fastest
    call of each counts) and records the faster, like ``torch.backends.cudnn.benchmark``. Which kernel is
    faster depends on the CPU and the shape (oneDNN on our AMD EPYC, BLAS ``sgemm`` on most shapes of an
    Intel Xeon, docs/benchmarks.md); the two agree to float rounding, and once a shape's route is chosen its
    results are deterministic for the rest of the process."""
    if _backend == "blas" or _LP is None:
        return blas()
    if x.dtype != torch.float32 or _backend == "onednn":
        return onednn()
    if _backend != "timed":  # "auto" (and "torch", which reaches here only through the fused routes' callers)
        return blas() if intel_cpu() else onednn()
    rows = _row_bucket(x.numel() // max(x.shape[-1], 1))
    key = (kind, rows, x.shape[-1], int(n_out), torch.get_num_threads())
    choice = _ROUTES.get(key)
    if choice is None:
        choice = _ROUTES[key] = _fastest({"onednn": onednn, "blas": blas})
    return onednn() if choice == "onednn" else blas()


@functools.cache
def intel_cpu() -> bool:
    """True on an Intel CPU (``vendor_id: GenuineIntel`` in /proc/cpuinfo, else the platform's processor
    name): where ``"auto"`` multiplies fp32 with BLAS (MKL) rather than oneDNN."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("vendor_id"):
                    return "GenuineIntel" in line
    except OSError:
        pass
    return "intel" in platform.processor().lower()


def _row_bucket(rows: int) -> int:
    """``rows`` rounded down to four significant bits above 64 (eight steps per octave: 64, 72, 80, ...,
    1024, 1152, 1280, ...): the speed of a product changes slowly with its row count, and sequences of varying
    length (captions, packed batches) then share a few timed choices instead of timing every new length."""
    if rows <= 64:
        return rows
    shift = rows.bit_length() - 4
    return (rows >> shift) << shift


def _fastest(routes: dict[str, Any]) -> str:
    """The name of the fastest of ``routes`` (callables), by the fastest of :data:`_TRIALS` alternating calls."""
    best = dict.fromkeys(routes, float("inf"))
    with torch.no_grad():
        for fn in routes.values():
            fn()
        for _ in range(_TRIALS):
            for name, fn in routes.items():
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - start)
    return min(best, key=best.__getitem__)
