"""Where Lumina writes things outside a run folder.

Only one place: the cache folder for artefacts that are expensive to make and safe to make again (the
trained feature networks behind the FID- and FAD-style scores, on-disk caches of conditioner features).
It is ``$LUMINA_CACHE_DIR`` when set, else ``~/.cache/lumina``. Everything in it is rebuilt on first use
when missing, so an empty folder (a fresh machine, CI) is always a valid state.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "LUMINA_CACHE_DIR"


def cache_dir() -> Path:
    """The cache folder (not created): ``$LUMINA_CACHE_DIR`` or ``~/.cache/lumina``."""
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "lumina"
