"""Distillation: cutting a student from the teacher, token-level and sequence-level KD, on tiny models."""

import json

import pytest

from core.errors import BadInput
from finetune.data import DataOptions
from finetune.distill import DistillOptions, cut_student, distill, kd_loss, kept_layers
from finetune.loop import IGNORE_INDEX, LoopOptions
from finetune.testing import INTENT_REPLIES, support_logs, tiny_llama, word_tokenizer
from finetune.train import EncodeOptions

ENCODE = EncodeOptions(company="Lumen & Oak", max_tokens=320)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tokenizer_dir):
    return str(tiny_llama(tmp_path_factory.mktemp("teacher") / "model", tokenizer_dir, layers=4, hidden_size=32))


@pytest.fixture
def logs(write):
    return write("logs.jsonl", "".join(json.dumps(r) + "\n" for r in support_logs(per_intent=6)))


def options(**overrides):
    base = dict(
        device="cpu",
        eval_examples=4,
        encode=ENCODE,
        data=DataOptions(validation_fraction=0.2, test_fraction=0.2),
        loop=LoopOptions(max_steps=8, batch_size=2, learning_rate=1e-2, warmup_steps=0),
    )
    return DistillOptions(**{**base, **overrides})


def test_kept_layers_are_spread_evenly_from_first_to_last():
    assert kept_layers(30, 15) == [0, 2, 4, 6, 8, 10, 12, 14, 17, 19, 21, 23, 25, 27, 29]
    assert kept_layers(4, 2) == [0, 3] and kept_layers(4, 3) == [0, 2, 3] and kept_layers(5, 1) == [4]
    with pytest.raises(BadInput, match="between 1 and 3"):
        kept_layers(4, 4)


def test_the_student_is_the_teacher_with_fewer_layers_and_its_weights(teacher):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(teacher)
    student, keep = cut_student(model, 2)
    assert keep == [0, 3] and student.config.num_hidden_layers == 2 and model.config.num_hidden_layers == 4
    t, s = model.state_dict(), student.state_dict()
    assert s["model.layers.1.mlp.up_proj.weight"].equal(t["model.layers.3.mlp.up_proj.weight"])
    assert s["model.layers.0.self_attn.q_proj.weight"].equal(t["model.layers.0.self_attn.q_proj.weight"])
    assert s["model.norm.weight"].equal(t["model.norm.weight"]) and s["lm_head.weight"].equal(t["lm_head.weight"])


def test_kd_loss_is_cross_entropy_at_alpha_zero_and_kl_vanishes_for_identical_logits():
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 3, 4, 5], [IGNORE_INDEX, 1, 2, 3, IGNORE_INDEX]])
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
    assert kd_loss(logits, torch.randn(2, 5, 11), labels, 2.0, 0.0, 11).item() == pytest.approx(ce.item(), rel=1e-5)
    assert kd_loss(logits, logits.clone(), labels, 2.0, 1.0, 11).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(logits, torch.randn(2, 5, 11), labels, 2.0, 1.0, 11).item() > 0.01


def test_token_level_distillation_lowers_the_loss_and_saves_a_smaller_student(teacher, logs, tmp_path):
    from transformers import AutoConfig

    report = distill(teacher, tmp_path / "student", [logs], options(layers=2))
    assert report["mode"] == "token" and report["kept_layers"] == [0, 3]
    assert report["student_layers"] == 2 < report["teacher_layers"] == 4
    assert report["student_parameters"] < report["teacher_parameters"]
    assert report["final_loss"] < report["initial_loss"]
    assert report["validation_loss_after"] < report["validation_loss_before"]
    assert AutoConfig.from_pretrained(tmp_path / "student").num_hidden_layers == 2
    assert json.loads((tmp_path / "student" / "distill_report.json").read_text())["steps"] == 8


def test_sequence_level_distillation_runs_when_the_tokenizers_differ(teacher, logs, tmp_path):
    texts = [q + " " + r for q, r in INTENT_REPLIES.values()] + ["Sources Question You are the customer support"]
    student = tiny_llama(tmp_path / "word-student", word_tokenizer(tmp_path / "word-tok", texts), layers=1)
    report = distill(
        teacher,
        tmp_path / "out",
        [logs],
        options(
            student=str(student), teacher_max_new_tokens=6, loop=LoopOptions(max_steps=3, batch_size=2, warmup_steps=0)
        ),
    )
    assert report["mode"] == "sequence" and report["student_layers"] == 1 and report["steps"] == 3
    replies = [json.loads(line) for line in (tmp_path / "out" / "teacher_replies.jsonl").read_text().splitlines()]
    assert len(replies) == report["train_sequences"] + report["skipped_prompt_too_long"] > 0
    with pytest.raises(BadInput, match="vocabularies to match"):
        distill(teacher, tmp_path / "forced", [logs], options(student=str(student), mode="token"))


def test_distillation_without_data_uses_the_teachers_training_split_or_says_what_to_pass(teacher, tmp_path):
    with pytest.raises(BadInput, match="pass --data"):
        distill(teacher, tmp_path / "student", options=options())
