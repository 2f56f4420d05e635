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
