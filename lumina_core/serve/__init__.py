"""``lumina serve``: a local web page to try a trained run - type a prompt, see or hear the result.

:mod:`.session` loads the run and turns a request into files plus how to show them (no web code);
:mod:`.limits` bounds what one request may ask and estimates its cost here; :mod:`.jobs` runs requests one
at a time and stops one that is cancelled, abandoned or over time; :mod:`.access` says who can reach the page;
:mod:`.app` is the gradio page over it (gradio is imported only when the page is built).
"""

from lumina_core.serve.limits import MAX_SAMPLES, Limits
from lumina_core.serve.session import PageResult, ServeSession, TaskInfo, parse_shape

__all__ = ["MAX_SAMPLES", "Limits", "PageResult", "ServeSession", "TaskInfo", "parse_shape"]
