"""`[practice]`: customer-style practice questions a bigger model writes for each help-centre section
(chatbot/practice.py), and what they train. A config section only; it knows nothing of models."""

from __future__ import annotations

from pydantic import Field

from core.config_base import _Section


class PracticeConfig(_Section):
    # write them at `chatbot ingest` (as `ingest --practice` does) and at `chatbot improve`; cached per section
    # version in the index, so only new or changed sections cost model time
    enabled: bool = False
    # the writer: Qwen2.5-Coder-1.5B-Instruct (int8, `make practice-model` installs its parts), a folder, or a hub id
    model: str = "qwen2.5-coder-1.5b-instruct-int8"
    questions_per_section: int = Field(default=3, ge=1, le=8)
    max_sections: int = Field(default=0, ge=0)  # 0: every section; else a seeded sample of this many
    section_chars: int = Field(default=1200, ge=200)  # of a section's text shown to the writer
    max_new_tokens: int = Field(default=110, ge=16)  # the writer's whole reply (three questions ~ 60-90 tokens)
    # what the kept questions train, beside titles and headings (off by default: see README "Measured")
    train_decision: bool = False
    train_reranker: bool = False
