"""Cutting a student from its teacher: the same config with fewer decoder layers, evenly spaced from first to
last, initialised with those layers' weights (every other layer for half) and all the teacher's other weights.

Nothing depends on the model's size or family beyond it having one list of decoder layers. This module
knows nothing about training, losses, data or where a student is saved.
"""

from __future__ import annotations

import copy
import re

from core.errors import BadInput, ChatbotError


def decoder_layers(model) -> tuple[str, object]:
    """(qualified name, ModuleList) of the model's stack of `num_hidden_layers` decoder layers."""
    import torch

    count = model.config.num_hidden_layers
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return name, module
    raise ChatbotError(
        f"cannot find the {count} decoder layers of {type(model).__name__}; pass --student "
        "with a ready student model instead of cutting one"
    )


def kept_layers(total: int, keep: int) -> list[int]:
    """`keep` layer indices spread evenly over `total`, first and last included."""
    if not 1 <= keep < total:
        raise BadInput(f"--layers must be between 1 and {total - 1} for a teacher with {total} layers")
    if keep == 1:
        return [total - 1]
    return sorted({round(i * (total - 1) / (keep - 1)) for i in range(keep)})


def cut_student(teacher, layers: int):
    """A student with `layers` of the teacher's decoder layers and all its other weights, in fp32."""
    import torch
    from transformers import AutoModelForCausalLM

    total = teacher.config.num_hidden_layers
    keep = kept_layers(total, layers)
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(keep)
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == total:
        config.layer_types = [layer_types[i] for i in keep]
    student = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    prefix, _ = decoder_layers(teacher)
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(.+)$")
    new_index = {old: new for new, old in enumerate(keep)}
    state = {}
    for key, value in teacher.state_dict().items():
        match = pattern.match(key)
        if match:
            old = int(match.group(1))
            if old not in new_index:
                continue
            key = f"{prefix}.{new_index[old]}.{match.group(2)}"
        state[key] = value.detach().to("cpu", torch.float32)
    missing, unexpected = student.load_state_dict(state, strict=False)
    tied = set(getattr(student, "_tied_weights_keys", None) or ())
    if unexpected or [k for k in missing if k not in tied]:
        raise ChatbotError(f"cutting the student lost weights (missing {missing[:3]}, unexpected {unexpected[:3]})")
    student.tie_weights()
    return student, keep
