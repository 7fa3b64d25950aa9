"""The finetune / distill / evaluate / export commands: help, bad input, and a tiny run through the CLI."""

import json
import subprocess
import sys

import pytest

from chatbot.cli import main
from finetune.testing import support_logs, tiny_llama
from knowledge.testing import HashEmbedder

COMMANDS = {
    "finetune": [
        "--data",
        "--out",
        "--model",
        "--max-steps",
        "--resume",
        "--adapter-only",
        "--batch-size",
        "--learning-rate",
        "--checkpoint-every",
        "--lora-rank",
        "--profile",
        "--json",
        "--config",
    ],
    "distill": [
        "--teacher",
        "--out",
        "--layers",
        "--data",
        "--max-steps",
        "--student",
        "--mode",
        "--temperature",
        "--alpha",
    ],
    "evaluate": ["--data", "--model", "--limit", "--json", "--promote-to", "--max-new-tokens", "--predictions"],
    "export": ["--model", "--out", "--quantization", "--force"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_explains_every_option(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in COMMANDS[command]:
        assert option in text
    assert text.count("default") >= 1


def test_help_lists_the_commands_without_importing_torch(repo_root):
    code = (
        "import sys; from chatbot.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'peft', 'ctranslate2', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root, timeout=60)
    assert out.stdout.strip() == "[]"
    listing = subprocess.run(
        [sys.executable, "-m", "chatbot", "--help"], capture_output=True, text=True, cwd=repo_root, timeout=60
    ).stdout
    for command in COMMANDS:
        assert command in listing


@pytest.mark.parametrize(
    "argv, message",
    [
        (["finetune", "--data", "missing.jsonl", "--out", "OUT"], "does not exist"),
        (["finetune", "--data", "LOGS", "--out", "OUT", "--max-steps", "0"], "--max-steps must be at least 1"),
        (
            ["finetune", "--data", "LOGS", "--out", "OUT", "--model", "no-such-model"],
            "neither a folder nor a known model",
        ),
        (["finetune", "--data", "LOGS", "--out", "OUT", "--profile", "missing.json"], "profile"),
        (["distill", "--teacher", "no-such-model", "--out", "OUT"], "neither a folder nor a known model"),
        (["evaluate", "--data", "LOGS", "--model", "no/such/dir"], "neither a folder nor a known model"),
        (["evaluate", "--data", "missing.csv", "--model", "default"], "does not exist"),
        (["export", "--model", "LOGS", "--out", "OUT"], "does not exist"),
        (["export", "--model", "TMP", "--out", "OUT"], "not a transformers model folder"),
        (["finetune", "--out", "OUT"], "--data"),
    ],
)
def test_bad_input_exits_2_with_one_line_that_says_what_to_do(argv, message, tmp_path, capsys):
    logs = tmp_path / "logs.jsonl"
    logs.write_text("".join(json.dumps(r) + "\n" for r in support_logs(2)))
    argv = [{"LOGS": str(logs), "OUT": str(tmp_path / "out"), "TMP": str(tmp_path)}.get(a, a) for a in argv]
    assert run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def run(argv: list[str]) -> int:
    """The exit code, whether the command returned it or argparse exited."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_a_tiny_model_goes_through_finetune_distill_export_and_evaluate(tmp_path, capsys, tokenizer_dir, monkeypatch):
    monkeypatch.setattr("chatbot.builder.build_embedder", lambda *args, **kwargs: HashEmbedder())  # no MiniLM
    tiny = tiny_llama(tmp_path / "tiny", tokenizer_dir, layers=2)
    logs = tmp_path / "logs.jsonl"
    logs.write_text("".join(json.dumps(r) + "\n" for r in support_logs(5)))
    ft, student, ct2 = tmp_path / "ft", tmp_path / "student", tmp_path / "ct2"
    common = ["--max-steps", "2", "--batch-size", "2", "--max-tokens", "320", "--eval-examples", "2", "--json"]
    assert main(["finetune", "--data", str(logs), "--out", str(ft), "--model", str(tiny), *common]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 2 and report["data"]["splits"]["test"] == 4
    assert main(["distill", "--teacher", str(ft), "--out", str(student), "--layers", "1", *common]) == 0
    assert json.loads(capsys.readouterr().out)["student_layers"] == 1
    assert main(["export", "--model", str(ft), "--out", str(ct2), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["quantization"] == "int8"
    models = [str(ft), str(student), str(ct2)]
    argv = ["evaluate", "--data", str(ft / "data" / "test.jsonl"), "--limit", "2", "--max-new-tokens", "2"]
    assert main([*argv, *sum((["--model", m] for m in models), []), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["models"]) == models and out["examples"] == 2
    for scores in out["models"].values():
        assert {"rougeL", "cosine", "keyword_coverage", "tokens_per_s", "latency_s", "size_mb"} <= set(scores)
    assert out["models"][str(ct2)]["backend"] == "ctranslate2"
    assert main([*argv, "--model", str(ct2)]) == 0
    table = capsys.readouterr().out
    assert table.startswith("model") and "ctranslate2" in table


def test_options_come_from_the_config_file_and_flags_win(tmp_path, monkeypatch):
    import finetune.distill
    import finetune.train
    from core.errors import BadInput

    seen = []

    def stop(*args, options=None, **kwargs):
        seen.append(options if options is not None else args[2])
        raise BadInput("stopped before training")

    monkeypatch.setattr(finetune.train, "finetune", stop)
    monkeypatch.setattr(finetune.distill, "distill", lambda *a, **k: stop(*a[:2], options=a[3]))
    config = tmp_path / "c.toml"
    config.write_text("[finetune]\nmax_tokens = 100\n[finetune.lora]\nrank = 4\n[finetune.loop]\nmax_steps = 7\n")
    common = ["--data", "x.jsonl", "--out", str(tmp_path / "out")]
    assert run(["--config", str(config), "finetune", *common, "--max-steps", "9", "--company", "Lumen"]) == 2
    options = seen[-1]
    assert options.encode.max_tokens == 100 and options.encode.company == "Lumen" and options.lora.rank == 4
    assert options.lora.alpha == 8 and options.loop.max_steps == 9 and options.loop.warmup_steps == 1
    assert options.loop.learning_rate == 2e-4 and not options.adapter_only
    assert run(["--config", str(config), "distill", "--teacher", "t", "--out", str(tmp_path / "s")]) == 2
    assert seen[-1].loop.learning_rate == 1e-4 and seen[-1].loop.max_steps == 7
    assert run(["distill", "--teacher", "t", "--out", str(tmp_path / "s"), "--learning-rate", "3e-4"]) == 2
    assert seen[-1].loop.learning_rate == 3e-4
