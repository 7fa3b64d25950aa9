"""The dev questions of bench/data/arduino_eval.jsonl again, in other voices: a second dev set of our own.

The hash split's questions are short and written by the same hand; customers write long emails with a
greeting, a story and a signature, shout, and misspell. Each dev question (out-of-scope ones too) is
rewritten once, deterministically, as one of: a long email, an angry message (sometimes in capitals),
a misspelt one, or a misspelt long email. Tune on it like the dev split; it never sees the held-out
questions or ../shared/data/arduino-independent/. It knows nothing about the help centre.

    .venv/bin/python bench/voices.py > bench/data/arduino_voices.jsonl
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

GREETINGS = ["Hi there,", "Hello,", "Good morning!", "Hey,", "Dear Arduino support team,", "Hi, hope you're well."]
STORIES = [
    "I've been using Arduino boards for a couple of years now, mostly for small projects at home with my kids.",
    "I run a small makerspace and we have a few dozen boards that people use every week.",
    "I'm a teacher and I'm preparing material for next term, so I need to get this sorted soon.",
    "I'm fairly new to electronics, so apologies if this is a silly question.",
    "I already searched the forum for a while but couldn't find a clear answer anywhere.",
    "This is for a project I have to finish before the end of the month.",
]
SIGNATURES = [
    "Thanks in advance,\nMaria",
    "Cheers, Tom",
    "Best regards,\nKenji",
    "Thank you for your help!",
    "Kind regards, Olu",
]
ANGER = [
    "This is really frustrating.",
    "Honestly I'm pretty annoyed at this point.",
    "Third time I'm asking this!!",
    "I paid good money for this and it's not ok.",
]


def misspelt(text: str, rng: random.Random, rate: float = 0.18) -> str:
    """Some longer words with two letters swapped, one dropped or one doubled."""
    words = []
    for word in text.split():
        if len(word) > 4 and rng.random() < rate:
            i = rng.randrange(1, len(word) - 2)
            word = rng.choice(
                [
                    word[:i] + word[i + 1] + word[i] + word[i + 2 :],
                    word[:i] + word[i + 1 :],
                    word[:i] + word[i] + word[i:],
                ]
            )
        words.append(word)
    return " ".join(words)


def reworded(question: str, rng: random.Random) -> str:
    style = rng.choice(["email", "angry", "typos", "email+typos"])
    if "email" in style:
        question = f"{rng.choice(GREETINGS)} {' '.join(rng.sample(STORIES, 2))} {question[0].upper() + question[1:]} "
        question += rng.choice(SIGNATURES)
    if style == "angry":
        shouted = rng.random() < 0.3
        question = (
            f"{question} {rng.choice(ANGER)}".upper()
            if shouted
            else f"{rng.choice(ANGER)} {question} {rng.choice(ANGER)}"
        )
    if "typos" in style:
        question = misspelt(question, rng).lower()
    return question


def main(source: str = "bench/data/arduino_eval.jsonl") -> None:
    rng = random.Random(7)
    for line in Path(source).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("split") == "dev":
            out = {**row, "id": row["id"] + "-v", "question": reworded(row["question"], rng)}
            print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main(*sys.argv[1:])
