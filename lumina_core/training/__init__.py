"""Training: the Lightning module, EMA, atomic checkpoints with exact resume, previews, and the API.

Importing this package is light; Lightning is imported by :mod:`.module`, :mod:`.callbacks` and the
functions of :mod:`.api` when they run.

    from lumina_core.training.api import train, sample, evaluate, load_run
"""
