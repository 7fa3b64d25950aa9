"""LoRA fine-tuning on a tiny Llama built from a config (the SmolLM2 tokenizer, random weights)."""

import json

import pytest

from core.errors import BadInput, NotFound
from chatbot.answer.llm import Message, TransformersChatModel
from finetune.data import DataOptions
from finetune.loop import IGNORE_INDEX, LoopOptions, batch_indices, collate, reply_loss, tail_logits
from finetune.testing import support_logs, tiny_llama
from finetune.train import EncodeOptions, FinetuneOptions, encode_example, finetune

ENCODE = EncodeOptions(company="Lumen & Oak", max_tokens=320)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tokenizer_dir):
    return str(tiny_llama(tmp_path_factory.mktemp("tiny") / "model", tokenizer_dir, layers=2, hidden_size=32))


@pytest.fixture
def logs(write):
    return write("logs.jsonl", "".join(json.dumps(r) + "\n" for r in support_logs(per_intent=6)))


def options(model, steps=8, **loop):
    return FinetuneOptions(
        model=model,
        device="cpu",
        eval_examples=4,
        encode=ENCODE,
        data=DataOptions(validation_fraction=0.2, test_fraction=0.2),
        loop=LoopOptions(max_steps=steps, batch_size=2, learning_rate=2e-2, warmup_steps=0, **loop),
    )


def weights(folder):
    from safetensors.torch import load_file

    return load_file(f"{folder}/model.safetensors")


def test_prompt_tokens_are_masked_and_match_the_serve_time_prompt(tiny):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    messages = [
        Message("system", "Be brief."),
        Message("user", "Sources:\n[1] Returns: 30 days.\n\nQuestion: returns?"),
    ]
    example, cut = encode_example(tokenizer, messages, "You have 30 days.", max_tokens=512)
    served = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages], add_generation_prompt=True, return_dict=True
    )["input_ids"]
    n = len(served)
    assert not cut and list(example.input_ids[:n]) == list(served)
    assert all(label == IGNORE_INDEX for label in example.labels[:n])
    assert list(example.labels[n:]) == list(example.input_ids[n:])
    assert tokenizer.decode(example.labels[n:]) == "You have 30 days.<|im_end|>\n"
    short, cut = encode_example(tokenizer, messages, "You have 30 days. " * 20, max_tokens=n + 20)
    assert cut and len(short.input_ids) == n + 20
    assert encode_example(tokenizer, messages, "x", max_tokens=n - 1)[0] is None


def test_a_left_padded_batch_scores_each_reply_as_the_example_alone_from_the_tail_logits(tiny):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny).eval()
    asks = [
        ("Sources:\n[1] Returns: 30 days.\n\nQuestion: how long do I have to send a lamp back?", "30 days."),
        ("Question: delivery?", "Delivery takes three to five working days, tracked, to most addresses."),
    ]
    examples = [encode_example(tokenizer, [Message("user", q)], reply, 320)[0] for q, reply in asks]
    assert len(examples[0].input_ids) != len(examples[1].input_ids)  # one of them is padded
    with torch.no_grad():
        alone = [float(model(**collate([e], 0, "cpu")).loss) for e in examples]
        batch = collate(examples, 0, "cpu")
        logits, labels = tail_logits(model, batch)
        assert logits.shape[1] < batch["input_ids"].shape[1]  # the prompts got no logits
        together = [float(reply_loss(model, {k: v[i : i + 1] for k, v in batch.items()})) for i in range(2)]
        full = float(model(**batch).loss)  # the model's own loss on the padded batch
    assert together == pytest.approx(alone, abs=1e-5)
    n = [sum(label != IGNORE_INDEX for label in e.labels[1:]) for e in examples]
    assert float(reply_loss(model, batch)) == pytest.approx(full, abs=1e-5)
    assert full == pytest.approx((alone[0] * n[0] + alone[1] * n[1]) / sum(n), abs=1e-5)


def test_top_layers_puts_adapters_in_the_top_layers_only(tiny):
    from dataclasses import replace

    from transformers import AutoModelForCausalLM

    from finetune.train import _with_lora

    top = replace(options(tiny), lora=replace(options(tiny).lora, top_layers=1))
    trained = [
        n for n, p in _with_lora(AutoModelForCausalLM.from_pretrained(tiny), top).named_parameters() if p.requires_grad
    ]
    assert trained and all(".layers.1." in n for n in trained)  # the tiny model has layers 0 and 1
    assert {n.split(".layers.1.")[1].split(".")[1] for n in trained} >= {"q_proj", "down_proj"}  # every linear one
    every = [
        n
        for n, p in _with_lora(AutoModelForCausalLM.from_pretrained(tiny), options(tiny)).named_parameters()
        if p.requires_grad
    ]
    assert any(".layers.0." in n for n in every) and len(every) == 2 * len(trained)


def test_batches_cover_every_example_each_epoch_and_repeat_for_a_seed():
    epoch = [i for step in range(4) for i in batch_indices(10, step, 3, seed=1)]
    assert sorted(epoch) == list(range(10))
    assert batch_indices(10, 5, 3, seed=1) == batch_indices(10, 5, 3, seed=1)
    assert batch_indices(10, 4, 3, seed=1) != epoch[:3] or batch_indices(10, 4, 3, seed=2) != epoch[:3]


def test_lora_training_moves_the_weights_lowers_the_loss_and_saves_a_loadable_merged_model(tiny, logs, tmp_path):
    out = tmp_path / "ft"
    report = finetune([logs], out, options(tiny))
    assert report["steps"] == 8 and len(report["losses"]) == 8
    assert report["final_loss"] < report["initial_loss"]
    assert report["validation_loss_after"] < report["validation_loss_before"]
    assert 0 < report["trainable_parameters"] < report["total_parameters"]
    assert report["peak_rss_mb"] > 0 and report["train_seconds"] > 0
    saved = json.loads((out / "train_report.json").read_text())
    assert saved["steps"] == 8 and saved["data"]["splits"]["train"] == 16

    before, after = weights(tiny), weights(out)
    moved = [k for k in before if "proj" in k and not before[k].equal(after[k])]
    assert len(moved) == 2 * 7  # every linear layer of both decoder layers
    assert before["model.embed_tokens.weight"].equal(after["model.embed_tokens.weight"])
    assert not list(out.glob("adapter_*"))

    model = TransformersChatModel(str(out), name="ft", device="cpu", threads=0, repetition_penalty=1.05)
    tokens = list(model.stream([Message("user", "where is my order")], max_new_tokens=4))
    assert tokens[-1].done and tokens[-1].completion_tokens >= 1
    assert (out / "data" / "test.jsonl").is_file() and list((out / "checkpoints").glob("step-*"))


def test_a_run_interrupted_after_a_checkpoint_resumes_to_the_same_weights(tiny, logs, tmp_path, monkeypatch):
    from finetune import loop

    straight = finetune([logs], tmp_path / "straight", options(tiny, steps=4))
    save = loop._save

    def save_then_crash(directory, step, *args, **kwargs):
        save(directory, step, *args, **kwargs)
        if step == 2:
            raise KeyboardInterrupt  # the machine went away after the step-2 checkpoint

    monkeypatch.setattr(loop, "_save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        finetune([logs], tmp_path / "resumed", options(tiny, steps=4, checkpoint_every_steps=1))
    monkeypatch.setattr(loop, "_save", save)
    resumed = finetune([logs], tmp_path / "resumed", options(tiny, steps=4), resume=True)
    assert resumed["resumed_from_step"] == 2 and resumed["steps"] == 4
    assert resumed["losses"][:2] == straight["losses"][:2]
    assert resumed["losses"] == pytest.approx(straight["losses"], rel=1e-4)
    assert resumed["validation_loss_before"] == straight["validation_loss_before"]
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert all((a[k] - b[k]).abs().max() < 1e-5 for k in a)


def test_resume_needs_a_checkpoint_and_a_fresh_run_refuses_old_checkpoints(tiny, logs, tmp_path):
    with pytest.raises(NotFound, match="run without --resume"):
        finetune([logs], tmp_path / "none", options(tiny, steps=1), resume=True)
    finetune([logs], tmp_path / "once", options(tiny, steps=1))
    with pytest.raises(BadInput, match="pass --resume"):
        finetune([logs], tmp_path / "once", options(tiny, steps=2))


def test_adapter_only_saves_a_small_adapter_that_transformers_loads(tiny, logs, tmp_path):
    import dataclasses

    out = tmp_path / "adapter"
    report = finetune([logs], out, dataclasses.replace(options(tiny, steps=1), adapter_only=True))
    assert report["output"] == "adapter"
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    model = TransformersChatModel(str(out), name="adapter", device="cpu", threads=0, repetition_penalty=1.05)
    assert list(model.stream([Message("user", "hi")], max_new_tokens=2))[-1].done
