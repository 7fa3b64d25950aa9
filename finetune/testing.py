"""Tiny stand-ins for tests: a few-layer Llama built from a config (no download) and a word-level
tokenizer with a chat template, so training, distillation and export run in seconds on a CPU.

The models are random: they exercise the code paths, not the quality of a reply.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tiny_llama(
    folder: str | Path, tokenizer_dir: str | Path, layers: int = 2, hidden_size: int = 32, seed: int = 0
) -> Path:
    """Save a random Llama with `layers` decoder layers and the tokenizer of `tokenizer_dir` to `folder`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (Path(tokenizer_dir) / name).is_file():
            shutil.copy2(Path(tokenizer_dir) / name, folder / name)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    eos = (
        tokenizer.convert_tokens_to_ids("<|im_end|>")
        if "<|im_end|>" in tokenizer.get_vocab()
        else tokenizer.eos_token_id
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(folder)
    return folder


def word_tokenizer(folder: str | Path, texts: Iterable[str]) -> Path:
    """A word-level tokenizer over `texts` (a vocabulary unlike any BPE model's) with a ChatML template."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<|im_start|>", "<|im_end|>", "<pad>"]
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(list(texts), trainers.WordLevelTrainer(special_tokens=specials))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
    )
    fast.chat_template = CHAT_TEMPLATE
    folder = Path(folder)
    fast.save_pretrained(folder)
    return folder


def tiny_tokenizer(folder: str | Path, texts: Iterable[str] | None = None, vocab_size: int = 800) -> Path:
    """A small byte-level BPE tokenizer with a ChatML template, trained in well under a second.

    Like a real chat model's tokenizer (and unlike `word_tokenizer`) every text round-trips exactly,
    case, punctuation and newlines included, so tests need no real model converted for its tokenizer.
    `texts` (default: `support_logs()` and a prompt's usual words) only shape the merges.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if texts is None:
        texts = [f"{row['instruction']}\n{row['response']}" for row in support_logs()]
        texts.append(
            "You are the customer support assistant of Lumen & Oak. Sources:\n[1] Returns: 30 days.\n"
            "Question: Answer from the sources only; say you do not know otherwise."
        )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(
        list(texts),
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=["<|im_start|>", "<|im_end|>", "<pad>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    folder = Path(folder)
    fast.save_pretrained(folder)
    return folder


INTENT_REPLIES = {
    "track_order": ("where is my order", "Your order ships in 2 days; the tracking link is in your email."),
    "cancel_order": ("how do I cancel my order", "Cancel it from My account within one hour of ordering."),
    "return_item": ("can I return a lamp", "Yes, returns are free within 30 days of delivery."),
    "reset_password": ("I forgot my password", "Use Forgot password on the sign-in page to get a reset link."),
}


def support_logs(per_intent: int = 6) -> list[dict]:
    """Short Bitext-style rows, `per_intent` paraphrases for each of four intents."""
    rows = []
    for intent, (question, reply) in INTENT_REPLIES.items():
        for i in range(per_intent):
            rows.append(
                {
                    "instruction": f"{question} please {i}" if i else question,
                    "response": reply,
                    "intent": intent,
                    "category": intent.split("_")[-1].upper(),
                }
            )
    return rows
