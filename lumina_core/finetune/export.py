"""LoRA export formats: foreign LoRA layouts that ``lumina lora export --format NAME`` writes.

An export format turns one of our adapter files (:func:`lumina_core.finetune.lora.save_adapter`: factors
``<module>.lora_A.weight`` (r, in) / ``<module>.lora_B.weight`` (out, r) over our module names, the update
``W' = W + (alpha / r) B A``) into the file(s) another program loads. Which layouts exist depends on the
network the trunk was trained to imitate, so formats belong to plugins (the image plugin registers
``diffusers``, ``comfyui`` and ``kohya``, the LoRA formats of the Lumina image models); the core knows only this
contract::

    fmt = lora_export_format("diffusers")               # registered by a plugin in LORA_FORMATS
    paths = fmt.export(read_adapter("adapter.safetensors"), "out/")
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import ClassVar

from torch import Tensor

from lumina_core.finetune.lora import AdapterFile, read_adapter
from lumina_core.registry import LORA_FORMATS


class LoraExportFormat(abc.ABC):
    """Base class of a LoRA export format (registered in ``LORA_FORMATS``).

    Subclass, implement :meth:`export`, register with ``@LORA_FORMATS.register("name")``.
    """

    #: the registered name (``lumina lora export --format NAME``)
    name: ClassVar[str] = ""
    #: one line for people: what the written file holds and which program reads it
    description: ClassVar[str] = ""
    #: the file written when ``out`` is a folder
    default_filename: ClassVar[str] = "lora.safetensors"
    #: whether :meth:`export` writes the parameters an adapter trained in full (``AdapterFile.diffs``, from
    #: ``train.lora.train_also``); when False, :func:`export_adapter` refuses such an adapter
    carries_full_weights: ClassVar[bool] = False

    @abc.abstractmethod
    def export(self, adapter: AdapterFile, out: str | Path) -> list[Path]:
        """Write ``adapter`` to ``out`` (a ``.safetensors`` path, or a folder to write :attr:`default_filename`
        into; see :meth:`output_file`) and return the paths written. Raises ValueError when the adapter has
        no counterpart in this format (saying which module and why)."""

    def output_file(self, out: str | Path) -> Path:
        """``out`` when it names a ``.safetensors`` file, else ``out / default_filename``; parents created."""
        out = Path(out)
        if out.suffix != ".safetensors":
            out = out / self.default_filename
        out.parent.mkdir(parents=True, exist_ok=True)
        return out

    @staticmethod
    def write(state: dict[str, Tensor], path: Path) -> Path:
        """Save ``state`` as safetensors at ``path`` (tensors made contiguous), atomically."""
        from safetensors.torch import save_file

        tmp = path.with_name(f".{path.name}.tmp")
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"format": "pt"})
        tmp.replace(path)
        return path


def lora_export_format(name: str) -> LoraExportFormat:
    """The registered export format ``name``, built (an unknown name says what is known, with a did-you-mean)."""
    return LORA_FORMATS.get(name)()


def export_adapter(adapter: str | Path | AdapterFile, out: str | Path, format: str) -> list[Path]:
    """Read ``adapter`` (a file :func:`~lumina_core.finetune.lora.save_adapter` wrote) and write it in the
    registered format ``format`` to ``out``; returns the paths written."""
    fmt = lora_export_format(format)
    if not isinstance(adapter, AdapterFile):
        adapter = read_adapter(adapter)
    moved = sorted(n for n, d in adapter.diffs.items() if bool(d.ne(0).any()))  # an untouched one carries nothing
    if moved and not fmt.carries_full_weights:
        names = moved
        raise ValueError(
            f"this adapter also trained {len(names)} tensors in full (train.lora.train_also: "
            f"{', '.join(names[:4])}{', ...' if len(names) > 4 else ''}), which the {fmt.name!r} LoRA format "
            "cannot carry: exported, the adapter would lose them and sample differently. Merge it into the base "
            "instead (`lumina lora merge BASE ADAPTER --out DIR`), or train with train.lora.train_also=[] "
            "(factors only) for an adapter to export"
        )
    return list(fmt.export(adapter, out))


__all__ = ["LORA_FORMATS", "LoraExportFormat", "export_adapter", "lora_export_format"]
