"""Testing helpers shared by every plugin: the conformance suite and a weightless text conditioner.

    from lumina_core.testing import PluginConformance

    class TestMyPlugin(PluginConformance):
        plugin_name = "mine"
        def make_samples(self): ...

Importing this package imports torch (it is test infrastructure, never on the CLI's start-up path).
"""

from lumina_core.testing.conditioners import HashTextConditioner
from lumina_core.testing.conformance import PluginConformance

__all__ = ["HashTextConditioner", "PluginConformance"]
