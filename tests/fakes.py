"""Tiny deterministic stand-ins for the model seams, for unit tests of the pieces around them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np

from chatbot.answer.llm import Message, Token
from knowledge.lexical import tokenize


class HashEmbedder:
    """Bag of hashed stemmed words: texts sharing words are similar. Not a language model."""

    name = "hash-test"

    def __init__(self, dimension: int = 256):
        self.dimension = dimension
        self.calls = 0
        self.embedded = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.embedded += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in tokenize(text):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out


class ScriptedChatModel:
    """Answers every prompt with `reply`, word by word; records the prompts it saw."""

    def __init__(self, reply: str = "", error: Exception | None = None, device: str = "cpu"):
        self.reply = reply
        self.error = error
        self.device = device
        self.name = "scripted"
        self.prompts: list[list[Message]] = []

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[Token]:
        self.prompts.append(messages)
        if self.error:
            raise self.error
        words = self.reply.split(" ")
        for i, word in enumerate(words):
            yield Token(word if i == 0 else " " + word)
        yield Token("", done=True, prompt_tokens=sum(len(m.content.split()) for m in messages),
                    completion_tokens=len(words))
