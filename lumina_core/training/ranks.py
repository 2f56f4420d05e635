"""Which process of a data-parallel run this is, before the trainer starts (where only the launcher's
environment variables say it)."""

from __future__ import annotations


def launch_rank() -> int:
    """0 exactly for the process that is (or will be) global rank 0, as the launcher's environment says before
    the trainer starts (torchrun / SLURM: ``RANK`` / ``SLURM_PROCID``; Lightning's own launcher: ``NODE_RANK``
    and ``LOCAL_RANK``, whose sum is 0 only on rank 0); the process a user started is 0."""
    import os

    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if "SLURM_PROCID" in os.environ and "SLURM_NTASKS" in os.environ and int(os.environ["SLURM_NTASKS"]) > 1:
        return int(os.environ["SLURM_PROCID"])
    return int(os.environ.get("LOCAL_RANK", 0)) + int(os.environ.get("NODE_RANK", 0))


def close_process_group(synchronise: bool) -> None:
    """Destroy ``torch.distributed``'s process groups on this rank before the interpreter exits.

    PyTorch asks every process to call ``destroy_process_group()`` once communication is over: a gloo group
    left for interpreter finalisation may still have worker threads running when it is destroyed, and the
    process then aborts ("terminate called without an active exception", SIGABRT) after a run that
    succeeded. With ``synchronise`` every rank first waits for the others (a barrier), so no rank leaves
    while another still talks to it; without it (a rank that is failing) the group is only closed. Nothing
    happens in a single-process run."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    if synchronise:
        dist.barrier()
    dist.destroy_process_group()
