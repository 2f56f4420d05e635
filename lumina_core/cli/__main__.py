"""``python -m lumina_core.cli`` runs the ``lumina`` command."""

import sys

from lumina_core.cli.main import main

sys.exit(main())
