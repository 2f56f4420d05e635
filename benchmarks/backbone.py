"""Backbone speed: our Next-DiT trunk vs diffusers' LuminaNextDiT2DModel, same weights, same inputs.

    PYTHONPATH=. python benchmarks/backbone.py --family unified   # our unified trunk vs Lumina2Transformer2DModel

    PYTHONPATH=. python benchmarks/backbone.py                    # default: dim 384, 6 layers, 6/2 heads, fp32
    PYTHONPATH=. python benchmarks/backbone.py --bf16 --compile   # add bf16-autocast and torch.compile rows
                                                                  # (bf16: also each runner's bf16/fp32 ratio)
    PYTHONPATH=. python benchmarks/backbone.py --kernels          # add each product, BLAS vs oneDNN (CPU)
    PYTHONPATH=. python benchmarks/backbone.py --before /tmp/old  # this tree vs an older lumina_core, same run
                                                                  # (git archive <ref> lumina_core | tar -x -C /tmp/old)

Both models hold identical weights (ours is loaded from the diffusers module with ``from_diffusers``); the
script checks their outputs agree before timing. On CPU in fp32 a third runner, "ours, torch kernels", runs
our trunk with its products through PyTorch's ``F.linear`` (BLAS) instead of oneDNN
(``lumina_core/model/linear.py``, the backend ``lumina_core/model/linear_routes.py``): the gain of the trunk's design alone, apart from the choice of kernels;
a fourth, "ours, BLAS products", keeps our fused routes and hand-written backward passes but multiplies with
PyTorch's GEMM (the ``"blas"`` linear backend); a fifth, "ours, oneDNN products", every product by oneDNN
(``"onednn"``, the default kernels before ``"auto"`` became a rule by CPU: BLAS on Intel, oneDNN elsewhere).
"ours" is the default, ``"auto"``.
Measurements rotate between the runners (the order shifts every repeat) so that machine noise hits all of
them; the median of the repeats is reported.
Tokens/s counts image tokens (patches) processed: batch * (H / p) * (W / p) per call.

``--before DIR`` compares two versions of our code in one run: child processes alternate between this
tree and the ``lumina_core`` under DIR (``--rounds`` each, the order swapping every round), each timing our
trunk and diffusers' on the same inputs; it prints each version's median milliseconds and speed-up over
diffusers, and the ratio of the two versions (after / before, above 1: this tree is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# the backend's names as linear.py re-exports them, so that an older tree (--before) imports them too
from lumina_core.model.linear import linear_backend, uses_onednn

try:  # the linear backend's own module; an older lumina_core (--before) kept the policy in linear.py
    from lumina_core.model import linear_routes as backend_policy
except ImportError:
    from lumina_core.model import linear as backend_policy

MATMUL_OPS = (
    "aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm",
    "mkldnn::_linear_pointwise", "mkldnn::_linear_pointwise.binary",  # oneDNN products (with fused post-ops)
)
ATTENTION_OPS = ("scaled_dot_product", "flash_attention", "efficient_attention", "cudnn_attention")


def _from_diffusers():
    """The diffusers loader: the image plugin's; an older ``lumina_core`` timed by ``--before`` (from before the
    image formats moved into the plugin) still has its own in ``lumina_core.interop``."""
    import lumina_core.interop as core_interop

    if hasattr(core_interop, "from_diffusers"):
        return core_interop.from_diffusers
    from lumina_modalities.image.interop import from_diffusers

    return from_diffusers


def build(args):
    from diffusers import LuminaNextDiT2DModel

    from_diffusers = _from_diffusers()

    torch.manual_seed(0)
    if args.family == "unified":  # Lumina-Image 2.0's trunk: diffusers' Lumina2Transformer2DModel
        from diffusers import Lumina2Transformer2DModel

        head = args.dim // args.heads
        third = head // 3 // 2 * 2
        ref = Lumina2Transformer2DModel(
            sample_size=args.size, patch_size=args.patch, in_channels=args.channels, hidden_size=args.dim,
            num_layers=args.layers, num_refiner_layers=2, num_attention_heads=args.heads,
            num_kv_heads=args.kv_heads, axes_dim_rope=(head - 2 * third, third, third), cap_feat_dim=args.context_dim,
        )
        with torch.no_grad():
            for p in ref.parameters():
                p.copy_(torch.randn_like(p) * 0.02)
        return from_diffusers(ref).to(args.device), ref.to(args.device)
    ref = LuminaNextDiT2DModel(
        sample_size=args.size, patch_size=args.patch, in_channels=args.channels, hidden_size=args.dim,
        num_layers=args.layers, num_attention_heads=args.heads, num_kv_heads=args.kv_heads,
        cross_attention_dim=args.context_dim,
    )
    with torch.no_grad():  # random values everywhere (diffusers zero-initialises gates), tied query copies
        for p in ref.parameters():
            p.copy_(torch.randn_like(p) * 0.02)
        for layer in ref.layers:
            layer.attn2.to_q.weight.copy_(layer.attn1.to_q.weight)
            layer.attn2.norm_q.load_state_dict(layer.attn1.norm_q.state_dict())
    ours = from_diffusers(ref)
    return ours.to(args.device), ref.to(args.device)


def make_inputs(args):
    from diffusers.models.embeddings import get_2d_rotary_pos_embed_lumina

    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.channels, args.size, args.size, generator=g)
    t = torch.rand(args.batch, generator=g)
    y = torch.randn(args.batch, args.context_len, args.context_dim, generator=g)
    ymask = torch.ones(args.batch, args.context_len, dtype=torch.long)
    for i in range(args.batch):  # captions of different lengths
        ymask[i, max(1, args.context_len - 3 * i) :] = 0
    emb = get_2d_rotary_pos_embed_lumina(args.dim // args.heads, 384, 384)  # precomputed, as in the pipeline
    dev = args.device
    return x.to(dev), t.to(dev), y.to(dev), ymask.to(dev), emb.to(dev)


def runners(ours, ref, inputs):
    x, t, y, ymask, emb = inputs

    def ours_fwd(model=ours):
        return model(x, t, y, ymask)

    def ours_torch_kernels(model=ours):
        """Our trunk with every product through ``F.linear`` (PyTorch's BLAS) instead of oneDNN: what the
        trunk's design alone (less work, fewer passes) gains; the backward follows what the forward recorded."""
        with linear_backend("torch"):
            return model(x, t, y, ymask)

    def ref_fwd(model=ref):
        if type(model).__name__ == "Lumina2Transformer2DModel":
            return model(x, t, y, ymask.bool(), return_dict=False)[0]
        return model(x, t, y, ymask, emb, cross_attention_kwargs={}, return_dict=False)[0]

    return ours_fwd, ours_torch_kernels, ref_fwd


def step(fn, train: bool, ctx) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one forward or forward+backward."""
    sync()
    start, cpu = time.perf_counter(), time.process_time()
    if train:
        with ctx():
            out = fn()
        out.float().square().mean().backward()
    else:
        with torch.no_grad(), ctx():
            fn()
    sync()
    return time.perf_counter() - start, time.process_time() - cpu


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def compare(name, fns, models, train, ctx, args, tokens, medians=None):
    """Interleaved timing of every runner in ``fns`` (the order rotates every repeat); prints median
    wall-clock tokens/s and, for each runner other than ``diffusers``, its speed-up over ``diffusers`` as the
    ratio of median wall time, of median process CPU time and of best-of-N CPU time.

    On a machine shared with other jobs, the CPU-time ratios (process time, all threads of this process)
    are the steadier comparison - other jobs only ever add time, so the best-of-N ratio is the least
    disturbed one; on a quiet machine all agree.
    """
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    order = list(fns)
    for k in order:  # warm-up
        for _ in range(args.warmup):
            step(fns[k], train, ctx)
    for r in range(args.repeats):
        for k in order[r % len(order):] + order[: r % len(order)]:
            for m in models.values():
                m.zero_grad(set_to_none=True)
            w, c = step(fns[k], train, ctx)
            wall[k].append(w)
            cpu[k].append(c)
    med = {k: statistics.median(v) for k, v in wall.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    if medians is not None:  # {runner: median wall seconds}, for ratios between precisions
        medians.update(med)
        medians["cpu"] = cmed  # {runner: median process CPU seconds}, for --before on a loaded machine
    cmin = {k: min(v) for k, v in cpu.items()}
    rate = {k: tokens / v for k, v in med.items()}
    print(f"{name}: diffusers {rate['diffusers']:>6.0f} tok/s ({med['diffusers'] * 1e3:6.1f} ms)")
    ratios = {}
    for k in fns:
        if k == "diffusers":
            continue
        ratios[k] = rate[k] / rate["diffusers"]
        print(
            f"    {k:<22} {rate[k]:>6.0f} tok/s ({med[k] * 1e3:6.1f} ms)  speed-up {ratios[k]:.2f}x wall, "
            f"{cmed['diffusers'] / cmed[k]:.2f}x cpu-time ({cmin['diffusers'] / cmin[k]:.2f}x best-of-"
            f"{args.repeats} cpu-time)"
        )
    return ratios


def profiled_split(fn, train: bool, ctx, models, cuda: bool, steps: int = 2) -> tuple[float, float]:
    """(seconds per step in matmuls and attention kernels, seconds per step in every op), by self time under
    torch.profiler (CPU ops; on ``cuda`` the CUDA kernels), over ``steps`` steps after one unprofiled warm-up
    step, gradients cleared before each step as in :func:`compare`."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])

    def one_step():
        for m in models.values():
            m.zero_grad(set_to_none=True)
        step(fn, train, ctx)

    one_step()
    with profile(activities=acts) as prof:
        for _ in range(steps):
            one_step()
    total = core = 0.0
    for ev in prof.key_averages():
        if cuda and ev.device_type != torch.autograd.DeviceType.CUDA:
            continue  # a CPU op's device time is its kernels', which are rows of their own
        dt = ev.self_device_time_total if cuda else ev.self_cpu_time_total
        total += dt
        if ev.key in MATMUL_OPS or any(a in ev.key for a in ATTENTION_OPS):
            core += dt
    return core / steps / 1e6, total / steps / 1e6


def speed_bound(diffusers_s: float, ours_core_s: float) -> float:
    """The speed-up over diffusers (median wall seconds ``diffusers_s``) that our trunk would reach if all its
    work outside products and attention (norms, RoPE, SiLU, residual adds, copies...) took no time:
    ``diffusers_s / ours_core_s``. The products and attention are the same arithmetic in both models, at the
    kernels' speed, so a target above this bound cannot be reached by leaner elementwise work, fused or not."""
    return diffusers_s / ours_core_s if ours_core_s > 0 else float("nan")


def kernel_table(ours, args, tokens: int) -> None:
    """Each of the trunk's products, PyTorch's ``F.linear`` (BLAS) vs oneDNN, and the no-grad SwiGLU plain vs
    fused, at this configuration (median of ``args.repeats`` after a warm-up, milliseconds)."""
    import torch.nn.functional as F

    from lumina_core.model.linear import swiglu

    def median_ms(fn) -> float:
        fn()
        times = []
        for _ in range(max(args.repeats, 5)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e3

    block = ours.model.trunk.layers[0]
    dim, hidden = args.dim, block.feed_forward.hidden
    widths = {"q (and out)": dim, "k or v": block.attention.splits[1], "SwiGLU w1 or w3": hidden}
    g = torch.Generator().manual_seed(0)
    print(f"kernels at {tokens} tokens, 1 call each ({torch.get_num_threads()} threads): F.linear vs oneDNN")
    with torch.no_grad():
        x = torch.randn(tokens, dim, generator=g)
        for name, n_out in widths.items():
            w = torch.randn(n_out, dim, generator=g)
            a = median_ms(lambda w=w: F.linear(x, w))
            b = median_ms(lambda w=w: torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], ""))
            print(f"    {dim} -> {n_out:<5} {name:<16} {a:7.2f} vs {b:7.2f} ms  ({a / b:.2f}x)")
        h = torch.randn(tokens, hidden, generator=g)
        w2 = torch.randn(dim, hidden, generator=g)
        a = median_ms(lambda: F.linear(h, w2))
        b = median_ms(lambda: torch.ops.mkldnn._linear_pointwise(h, w2, None, "none", [], ""))
        print(f"    {hidden} -> {dim:<5} {'SwiGLU w2':<16} {a:7.2f} vs {b:7.2f} ms  ({a / b:.2f}x)")
        # the backward's weight gradients g^T x: oneDNN's product takes (out, in) weights, so the operands are
        # transposed views of the saved input and the output gradient, or contiguous copies of them
        print("    weight gradient g^T x: torch.mm vs oneDNN on the transposed views vs oneDNN on contiguous copies")
        lp = torch.ops.mkldnn._linear_pointwise
        for name, (n_in, n_out) in {**{k: (dim, v) for k, v in widths.items()}, "SwiGLU w2": (hidden, dim)}.items():
            xi, go = torch.randn(tokens, n_in, generator=g), torch.randn(tokens, n_out, generator=g)
            a = median_ms(lambda xi=xi, go=go: torch.mm(go.t(), xi))
            b = median_ms(lambda xi=xi, go=go: lp(go.t(), xi.t(), None, "none", [], ""))
            c = median_ms(lambda xi=xi, go=go: lp(go.t().contiguous(), xi.t().contiguous(), None, "none", [], ""))
            print(f"    {n_in} -> {n_out:<5} {name:<16} {a:7.2f} vs {b:7.2f} ({a / b:.2f}x) vs {c:7.2f} ms ({a / c:.2f}x)")
        w13 = block.feed_forward.w13.weight.detach()
        w1, w3 = w13.chunk(2)
        plain = median_ms(lambda: F.linear(F.silu(F.linear(x, w1)) * F.linear(x, w3), w2))
        fused = median_ms(lambda: swiglu(x, w13, w2))
        print(f"    no-grad SwiGLU, plain F.linear + SiLU + product vs fused oneDNN: {plain:7.2f} vs {fused:7.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", choices=("next_dit", "unified"), default="next_dit",
                    help="next_dit: vs LuminaNextDiT2DModel; unified: vs Lumina2Transformer2DModel")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=32, help="latent height = width")
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--patch", type=int, default=2)
    ap.add_argument("--context-dim", type=int, default=384)
    ap.add_argument("--context-len", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16", action="store_true", help="add bf16 autocast rows")
    ap.add_argument("--compile", action="store_true", help="add torch.compile rows")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--kernels", action="store_true", help="also time each product, BLAS vs oneDNN (CPU fp32)")
    ap.add_argument("--plot-dir", default=None, help="where the figure goes (default docs/images/benchmarks)")
    ap.add_argument("--before", default=None, help="a folder holding an older lumina_core: time it against this tree")
    ap.add_argument("--after", default=None, help="with --before: the newer lumina_core's folder (default: this tree)")
    ap.add_argument("--rounds", type=int, default=4, help="with --before: child runs per version")
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)  # a child's medians, for --before
    args = ap.parse_args()
    if args.before:
        return before_after(args)
    if args.threads:
        torch.set_num_threads(args.threads)

    ours, ref = build(args)
    inputs = make_inputs(args)
    ours_fwd, ours_torch_kernels, ref_fwd = runners(ours, ref, inputs)
    with torch.no_grad():
        err = (ours_fwd() - ref_fwd()).abs().max().item()
    tokens = args.batch * (args.size // args.patch) ** 2
    print(
        f"device {args.device} ({torch.get_num_threads()} threads), torch {torch.__version__}; dim {args.dim}, "
        f"{args.layers} layers, {args.heads}/{args.kv_heads} heads, batch {args.batch} x {args.size}x{args.size}x"
        f"{args.channels} patch {args.patch} ({tokens} tokens), captions {args.context_len}x{args.context_dim}; "
        f"max |ours - diffusers| = {err:.2e}"
    )
    fp32 = contextlib.nullcontext
    models = {"ours": ours, "diffusers": ref}
    fns = {"ours": ours_fwd, "diffusers": ref_fwd}
    if uses_onednn(inputs[0]):  # CPU fp32: also time our trunk on PyTorch's own BLAS products
        fns["ours, torch kernels"] = ours_torch_kernels

        def ours_blas_products(model=ours):
            """Our trunk's own fused routes and backward passes, every product by PyTorch's GEMM (``"blas"``)."""
            with linear_backend("blas"):
                return model(*inputs[:4])

        fns["ours, BLAS products"] = ours_blas_products

        def ours_onednn_products(model=ours):
            """Every product by oneDNN (``"onednn"``): the default kernels before ``"auto"`` chose by CPU."""
            with linear_backend("onednn"):
                return model(*inputs[:4])

        if "onednn" in getattr(backend_policy, "_BACKENDS", ()):  # an older tree (--before) has no such backend
            fns["ours, oneDNN products"] = ours_onednn_products
    ratios = {}  # comparison -> {runner: speed-up over diffusers}, for the figure
    med = {"fp32 forward": {}, "fp32 fwd+bwd": {}, "bf16 forward": {}, "bf16 fwd+bwd": {}}
    ratios["fp32 forward"] = compare("fp32 forward", fns, models, False, fp32, args, tokens, med["fp32 forward"])
    ratios["fp32 fwd+bwd"] = compare("fp32 forward+backward", fns, models, True, fp32, args, tokens, med["fp32 fwd+bwd"])
    if args.bf16:
        dev_type = "cuda" if args.device.startswith("cuda") else "cpu"

        def bf16():
            return torch.autocast(dev_type, dtype=torch.bfloat16)

        both = {"ours": ours_fwd, "diffusers": ref_fwd}
        with bf16():
            bf16_route = uses_onednn(inputs[0])
        if bf16_route:  # ours on oneDNN's bf16 products; also on PyTorch's bf16 F.linear, as diffusers
            both["ours, torch kernels"] = ours_torch_kernels
        ratios["bf16 forward"] = compare("bf16 autocast forward", both, models, False, bf16, args, tokens, med["bf16 forward"])
        ratios["bf16 fwd+bwd"] = compare("bf16 autocast fwd+bwd", both, models, True, bf16, args, tokens, med["bf16 fwd+bwd"])
        print("bf16 autocast vs fp32, each runner against itself (ratio of median wall time):")
        for mode in ("forward", "fwd+bwd"):
            a, b = med[f"fp32 {mode}"], med[f"bf16 {mode}"]
            print(f"    {mode:<8} " + ", ".join(f"{k} {a[k] / b[k]:.2f}x" for k in b if k in a and k != "cpu"))
    if args.compile:
        cfns = {"ours": torch.compile(ours_fwd), "diffusers": torch.compile(ref_fwd)}  # compiled: no oneDNN route
        ratios["compiled forward"] = compare("compiled fp32 forward", cfns, models, False, fp32, args, tokens)
        ratios["compiled fwd+bwd"] = compare("compiled fp32 fwd+bwd", cfns, models, True, fp32, args, tokens)
    if args.json:
        import lumina_core

        Path(args.json).write_text(json.dumps({"medians": med, "err": err, "source": lumina_core.__file__}))
        return
    print("figure:", *plot_ratios(ratios, args, tokens))
    if args.kernels and uses_onednn(inputs[0]):
        kernel_table(ours, args, tokens)
    if not args.no_profile:
        print("profiled, fp32, self time per step: matmuls + attention / every op (its share outside them)")
        for mode, train in (("fp32 forward", False), ("fp32 fwd+bwd", True)):
            cuda = args.device.startswith("cuda")
            split = {k: profiled_split(fn, train, fp32, models, cuda) for k, fn in fns.items()}
            print(
                f"    {mode:<13} "
                + ", ".join(
                    f"{k} {c * 1e3:.0f} / {t * 1e3:.0f} ms ({1 - c / t if t else float('nan'):.1%})"
                    for k, (c, t) in split.items()
                )
            )
            bound = speed_bound(med[mode]["diffusers"], split["ours"][0])
            print(
                f"    {mode}: with all our work outside matmuls and attention free, ours would be at most "
                f"{bound:.2f}x as fast as diffusers (its median wall time {med[mode]['diffusers'] * 1e3:.0f} ms over "
                f"our matmuls + attention {split['ours'][0] * 1e3:.0f} ms)"
            )


def before_after(args) -> None:
    """This tree vs the ``lumina_core`` under ``args.before``: child runs alternate, medians over the rounds."""
    bench = Path(__file__).resolve().parent
    here = Path(args.after).resolve() if args.after else bench.parent
    old = Path(args.before).resolve()
    for root in (old, here):
        if not (root / "lumina_core").is_dir():
            raise SystemExit(f"{root}: expected a folder holding lumina_core/")
    own = {"--before": args.before, "--after": args.after, "--rounds": str(args.rounds)}
    passed, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a in own:
            skip = True
        else:
            passed.append(a)
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for r in range(args.rounds):
        for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
            root = old if name == "before" else here
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "medians.json"
                env = dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{bench}")
                cmd = [sys.executable, str(Path(__file__).resolve()), *passed, "--no-profile", "--json", str(out)]
                subprocess.run(cmd, env=env, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
                result = json.loads(out.read_text())
                if not result["source"].startswith(str(root)):
                    raise SystemExit(f"the {name} run imported lumina_core from {result['source']}, not {root}")
                runs[name].append(result)
    tokens = args.batch * (args.size // args.patch) ** 2
    print(f"before: {old}; after: {here}; {args.rounds} child runs each, alternating; {tokens} tokens, dim {args.dim}, "
          f"{args.layers} layers; medians of the runs' medians ({args.repeats} repeats per run)")
    for mode in ("fp32 forward", "fp32 fwd+bwd"):
        ms = {v: statistics.median(r["medians"][mode]["ours"] for r in runs[v]) * 1e3 for v in runs}
        ref = {v: statistics.median(r["medians"][mode]["diffusers"] for r in runs[v]) * 1e3 for v in runs}
        spread = {v: sorted(r["medians"][mode]["diffusers"] / r["medians"][mode]["ours"] for r in runs[v]) for v in runs}
        print(
            f"  {mode:<13} ours before {ms['before']:7.1f} ms ({ref['before'] / ms['before']:.2f}x diffusers), "
            f"after {ms['after']:7.1f} ms ({ref['after'] / ms['after']:.2f}x diffusers); "
            f"after/before speed {ms['before'] / ms['after']:.3f}x"
        )
        for v in runs:  # the same-process ratio, run by run: the steadier figure on a shared machine
            print(f"      {v:<6} speed-up over diffusers per run: " + ", ".join(f"{x:.2f}x" for x in spread[v]))
        for v in runs:  # the same by process CPU time (other jobs add less to it than to wall time)
            cpu = sorted(
                r["medians"][mode]["cpu"]["diffusers"] / r["medians"][mode]["cpu"]["ours"]
                for r in runs[v] if "cpu" in r["medians"][mode]
            )
            if cpu:
                print(f"      {v:<6} speed-up by CPU time per run:     " + ", ".join(f"{x:.2f}x" for x in cpu))


def plot_ratios(ratios: dict[str, dict[str, float]], args, tokens: int):
    """Speed-up over diffusers (wall-clock medians) per comparison, one bar colour per runner of ours."""
    from plotting import bar_plot

    by_runner: dict[str, dict[str, float]] = {}
    for comparison, row in ratios.items():
        for runner, ratio in row.items():
            by_runner.setdefault(runner, {})[comparison] = ratio
    return bar_plot(
        by_runner,
        "backbone_speed_ratio",
        title=f"trunk speed vs diffusers' LuminaNextDiT2DModel ({args.device}, {torch.get_num_threads()} threads)",
        ylabel="speed-up (diffusers time / our time)",
        baseline=1.0,
        baseline_label="diffusers",
        note=f"benchmarks/backbone.py: dim {args.dim}, {args.layers} layers, {tokens} tokens; median of "
        f"{args.repeats} interleaved repeats; machine shared",
        out_dir=args.plot_dir,
    )


if __name__ == "__main__":
    main()
