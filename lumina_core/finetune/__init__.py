"""Fine-tuning: LoRA adapters on the trunk through peft (:mod:`lumina_core.finetune.lora`) and the contract of
the LoRA export formats plugins provide (:mod:`lumina_core.finetune.export`, ``LORA_FORMATS``)."""

from lumina_core.finetune.export import LoraExportFormat, export_adapter, lora_export_format
from lumina_core.finetune.lora import (
    DEFAULT_TARGETS,
    AdapterFile,
    LoraSettings,
    adapter_parameters,
    adapter_state,
    apply_lora,
    load_adapter,
    load_adapter_state,
    load_adapters_for_sampling,
    merge_adapter_into,
    merge_lora,
    parse_adapter_arg,
    read_adapter,
    save_adapter,
    target_modules,
)

__all__ = [
    "DEFAULT_TARGETS",
    "AdapterFile",
    "LoraSettings",
    "adapter_parameters",
    "adapter_state",
    "apply_lora",
    "LoraExportFormat",
    "export_adapter",
    "lora_export_format",
    "load_adapter",
    "load_adapter_state",
    "load_adapters_for_sampling",
    "merge_adapter_into",
    "merge_lora",
    "parse_adapter_arg",
    "read_adapter",
    "save_adapter",
    "target_modules",
]
