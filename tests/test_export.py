"""CTranslate2 export of a tiny model, its serving backend, and the builder picking it."""

import pytest

from chatbot.builder import build_llm
from core.config import load_config
from core.errors import BadInput, ChatbotError, NotFound
from chatbot.answer.llm import Message, TransformersChatModel
from chatbot.answer.llm_ct2 import CTranslate2ChatModel, is_ctranslate2_model
from chatbot.answer.export import export_ctranslate2
from finetune.testing import tiny_llama

MESSAGES = [
    Message("system", "You answer briefly."),
    Message("user", "Sources:\n[1] Returns: 30 days.\n\nQuestion: returns?"),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tokenizer_dir):
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model", tokenizer_dir, layers=2, hidden_size=64, seed=3)


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("ct2") / "int8"
    record = export_ctranslate2(tiny, out, "int8")
    assert record["quantization"] == "int8" and "tokenizer.json" in record["tokenizer_files"]
    return out


def test_the_int8_export_is_a_ctranslate2_folder_smaller_than_the_model(tiny, exported):
    assert is_ctranslate2_model(exported) and not is_ctranslate2_model(tiny)
    assert (exported / "chat_template.jinja").is_file()
    assert (exported / "model.bin").stat().st_size < (tiny / "model.safetensors").stat().st_size / 2


def test_the_export_streams_tokens_then_counts(exported):
    model = CTranslate2ChatModel(str(exported), name="ct2", device="cpu", threads=0, repetition_penalty=1.05)
    tokens = list(model.stream(MESSAGES, max_new_tokens=6))
    assert tokens[-1].done and not any(t.done for t in tokens[:-1])
    assert 1 <= tokens[-1].completion_tokens <= 6
    assert tokens[-1].prompt_tokens == len(model._prompt_ids(MESSAGES)) > 10
    assert all(t.text for t in tokens[:-1])
    assert model.device == "cpu" and model.name == "ct2"


def test_a_float32_export_generates_what_transformers_generates(tiny, tmp_path):
    out = tmp_path / "fp32"
    export_ctranslate2(tiny, out, "float32")
    ct2 = CTranslate2ChatModel(str(out), name="ct2", device="cpu", threads=0, repetition_penalty=1.0)
    hf = TransformersChatModel(str(tiny), name="hf", device="cpu", threads=0, repetition_penalty=1.0)
    a, b = list(ct2.stream(MESSAGES, 8)), list(hf.stream(MESSAGES, 8))
    assert a[-1].prompt_tokens == b[-1].prompt_tokens
    assert "".join(t.text for t in a) == "".join(t.text for t in b)


def test_the_builder_serves_an_export_with_the_ctranslate2_backend(exported, tiny):
    llm = build_llm(load_config(None, {"models": {"llm": str(exported)}}))
    assert isinstance(llm, CTranslate2ChatModel)
    assert isinstance(build_llm(load_config(None, {"models": {"llm": str(tiny)}})), TransformersChatModel)
    forced = build_llm(load_config(None, {"models": {"llm": str(exported), "llm_backend": "ctranslate2"}}))
    assert isinstance(forced, CTranslate2ChatModel)


def test_export_refuses_what_it_cannot_convert(tmp_path, exported, tiny):
    with pytest.raises(NotFound, match="does not exist"):
        export_ctranslate2(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(BadInput, match="without --adapter-only"):
        export_ctranslate2(tmp_path / "adapter", tmp_path / "out")
    with pytest.raises(BadInput, match="already a CTranslate2 export"):
        export_ctranslate2(exported, tmp_path / "out")
    with pytest.raises(BadInput, match="not empty"):
        export_ctranslate2(tiny, exported)
    with pytest.raises(BadInput, match="choose one of"):
        export_ctranslate2(tiny, tmp_path / "out", "int3")
    with pytest.raises(ChatbotError, match="chatbot export"):
        CTranslate2ChatModel(str(tiny), name="x", device="cpu", threads=0, repetition_penalty=1.0).warm_up()
