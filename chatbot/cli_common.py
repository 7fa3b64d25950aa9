"""What every `chatbot` command shares: the progress line, the common options, the config from the flags.

`chatbot.cli` re-exports these names, and commands registered by other packages import them from
there. Knows no command and no model: it builds no parser and loads nothing but the config tree.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def progress(message: str) -> None:
    """One line of progress on stderr, flushed at once (stdout is kept for the result)."""
    print(message, file=sys.stderr, flush=True)


CONFIG_KEY = "config:"  # a flag whose dest is this + a dotted config key overrides that key when given


def config_dest(key: str) -> str:
    """The argparse `dest` of a flag that overrides config key `key` (e.g. "finetune.lora.rank") when
    given; declare such a flag with no default, and give it a `metavar`."""
    return CONFIG_KEY + key


def config_from_args(args: argparse.Namespace):
    """The config tree: defaults < TOML file < the flags given (every command, plug-ins included)."""
    from core.config import load_config

    overrides: dict[str, Any] = {}
    if getattr(args, "index", None):
        overrides["index_dir"] = args.index
    if getattr(args, "db", None):
        overrides["db_url"] = args.db
    models = {}
    if getattr(args, "model", None):
        models["llm"] = args.model
    if getattr(args, "device", None):
        models["device"] = args.device
    if models:
        overrides["models"] = models
    if getattr(args, "k", None) and args.command == "ask":
        overrides["retrieval"] = {"k": args.k}
    for dest, value in vars(args).items():
        if dest.startswith(CONFIG_KEY) and value is not None:
            *sections, key = dest[len(CONFIG_KEY) :].split(".")
            node = overrides
            for section in sections:
                node = node.setdefault(section, {})
            node[key] = value
    return load_config(args.config, overrides)


def add_common(p: argparse.ArgumentParser, index: bool = False, db: bool = False) -> None:
    """Options every command shares; commands registered by other packages call it too."""
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--config", default=argparse.SUPPRESS, help="TOML config file (also accepted before the command)")
    if index:
        p.add_argument("--index", help="knowledge index folder (default from config: .chatbot/index)")
    if db:
        p.add_argument("--db", help="SQLAlchemy database URL (default: sqlite:///.chatbot/chatbot.db)")
