"""Training: the Task (:mod:`.task`) and its run state (:mod:`.task_run`), the Lightning module, EMA, atomic
checkpoints with exact resume, previews, and the API.

Importing this package is light; Lightning is imported by :mod:`.module`, :mod:`.callbacks` and the
functions of :mod:`.run` when they run. The API is one import (:mod:`.api`), whose work lives in :mod:`.run`
(training a run), :mod:`.inference` (sample, evaluate) and :mod:`.weights` (load_run, init_from, LoRA):

    from lumina_core.training.api import train, sample, evaluate, load_run
"""
