import pytest

from core.config import load_config
from core.errors import ConfigError


def test_defaults_then_toml_then_flags(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('db_url = "sqlite:///x.db"\n[retrieval]\nk = 7\n[models]\nllm = "/models/mine"\n')
    config = load_config(str(path), {"retrieval": {"k": 2}})
    assert config.db_url == "sqlite:///x.db" and config.models.llm == "/models/mine"
    assert config.retrieval.k == 2  # the flag wins over the file
    assert config.retrieval.candidates == 60  # the default stays


def test_unknown_keys_fail_and_list_the_known_ones(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[retrieval]\ntop_k = 3\n")
    with pytest.raises(ConfigError, match=r"retrieval\.top_k.*candidates.*context_turns"):
        load_config(str(path))


def test_wrong_types_and_missing_files_fail(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[retrieval]\nk = "four"\n')
    with pytest.raises(ConfigError, match="must be int"):
        load_config(str(path))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.toml"))


def test_types_are_strict_but_an_int_is_a_float_and_sections_must_be_tables():
    config = load_config(None, {"generation": {"repetition_penalty": 1}, "finetune": {"lora": {"rank": 8}}})
    assert config.generation.repetition_penalty == 1.0 and config.finetune.lora.rank == 8
    for overrides, message in [
        ({"retrieval": {"dense_weight": "1"}}, r"retrieval\.dense_weight' must be float"),
        ({"speech": {"vad": 1}}, "must be true or false"),
        ({"models": "x"}, r"'models' must be a \[section\]"),
        ({"finetune": {"loop": {"steps": 3}}}, r"finetune\.loop\.steps.*max_steps"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config(None, overrides)


def test_with_overrides_is_a_validated_copy():
    from core.config import DEFAULTS

    changed = DEFAULTS.with_overrides({"speech": {"model": "whisper-tiny.en"}})
    assert changed.speech.model == "whisper-tiny.en" and DEFAULTS.speech.model == "whisper-base"
    assert changed.speech.max_audio_s == DEFAULTS.speech.max_audio_s
    with pytest.raises(ConfigError, match="speech.model' must be str"):
        DEFAULTS.with_overrides({"speech": {"model": 3}})
