"""Lumina core: the modality-agnostic Next-DiT trunk, flow matching, samplers, registry and plugin contract.

Importing this package is cheap: heavy modules (torch models, Lightning) are imported by the submodules
that need them, so ``lumina --help`` stays fast.
"""

__version__ = "0.1.0"

#: Version of the plugin contract. A plugin declares the core API version it was written for
#: (``ModalityPlugin.api_version``); the registry refuses plugins whose major version differs.
CORE_API_VERSION = "1.0"
