"""Export a transformers causal LM to CTranslate2 (int8 by default) for fast serving.

The export is written to a temporary folder and renamed, so an interrupted export never leaves a
half model behind. The tokenizer files are copied beside `model.bin`, with `ctranslate2.json`
recording the source and quantization: `chatbot.answer.llm_ct2.CTranslate2ChatModel` serves the folder,
and the builder picks that backend by itself when `[models] llm` names it.
This module knows nothing about training or evaluation.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from core.errors import BadInput, ChatbotError, NotFound
from core.files import build_folder_atomic
from chatbot.answer.llm_ct2 import MARKER, is_ctranslate2_model

QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "added_tokens.json",
)


def export_ctranslate2(
    model_dir: str | Path, out_dir: str | Path, quantization: str = "int8", force: bool = False
) -> dict:
    """Convert `model_dir` to a CTranslate2 folder `out_dir`; returns what was written."""
    source, out = Path(model_dir), Path(out_dir)
    if quantization not in QUANTIZATIONS:
        raise BadInput(f"unknown quantization '{quantization}'; choose one of: {', '.join(QUANTIZATIONS)}")
    if not source.is_dir():
        raise NotFound(f"model folder {source} does not exist; pass a folder made by 'chatbot finetune' or 'distill'")
    if is_ctranslate2_model(source):
        raise BadInput(f"{source} is already a CTranslate2 export; export the transformers folder it came from")
    config = source / "config.json"
    if not config.is_file() or "architectures" not in json.loads(config.read_text(encoding="utf-8")):
        hint = (
            " (it holds a LoRA adapter: fine-tune without --adapter-only to get a merged model)"
            if (source / "adapter_config.json").is_file()
            else ""
        )
        raise BadInput(f"{source} is not a transformers model folder (no config.json with architectures){hint}")
    if out.exists() and any(out.iterdir()) and not force:
        raise BadInput(f"{out} is not empty; choose another --out folder or pass --force to replace it")
    try:
        from ctranslate2.converters import TransformersConverter
    except ImportError:
        raise ChatbotError("exporting needs the ctranslate2 package: pip install ctranslate2") from None

    began = time.perf_counter()
    copied = [name for name in TOKENIZER_FILES if (source / name).is_file()]
    record = {
        "format": "ctranslate2",
        "quantization": quantization,
        "source": str(source.resolve()),
        "tokenizer_files": copied,
    }

    def convert(tmp: Path) -> None:
        try:
            TransformersConverter(str(source), low_cpu_mem_usage=True).convert(
                str(tmp), quantization=quantization, force=True
            )
        except (ValueError, NotImplementedError) as exc:
            raise BadInput(f"CTranslate2 cannot convert {source}: {str(exc).splitlines()[0]}") from None
        for name in copied:
            shutil.copy2(source / name, tmp / name)
        record["seconds"] = round(time.perf_counter() - began, 2)
        (tmp / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    build_folder_atomic(out, convert)  # replaces an existing `out` (checked above: empty, or --force)
    record["out"] = str(out)
    record["size_mb"] = round((out / "model.bin").stat().st_size / 1e6, 1)
    return record
