"""``lumina serve``: a local web page to try a trained run - type a prompt, see or hear the result.

:mod:`.session` loads the run and turns a request into files plus how to show them (no web code);
:mod:`.app` is the gradio page over it (gradio is imported only when the page is built).
"""

from lumina_core.serve.session import MAX_SAMPLES, PageResult, ServeSession, TaskInfo, parse_shape

__all__ = ["MAX_SAMPLES", "PageResult", "ServeSession", "TaskInfo", "parse_shape"]
