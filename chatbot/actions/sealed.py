"""Sealing what an action under way remembers (the order number and email the customer gave) before it is
stored, so the database holds it only as ciphertext: Fernet (AES-128-CBC with HMAC-SHA256, from the
`cryptography` package), with a key that never enters the database.

The key is `$CHATBOT_SECRET_KEY` (a Fernet key: `python -c "from cryptography.fernet import Fernet;
print(Fernet.generate_key().decode())"`), else `secret.key` in the cache folder, made on first use and
readable by its owner only. Replicas sharing a database must share the key (set the variable); with a
key changed, half-finished actions are forgotten (the customer is asked again), nothing else is lost.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from core.config import cache_dir
from core.errors import ConfigError


class Sealer:
    """Seals JSON-able values into text and opens them again; `open` gives None for anything it did not seal."""

    def __init__(self, key: bytes):
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError(
                "CHATBOT_SECRET_KEY is not a Fernet key; make one with "
                '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`'
            ) from None

    @classmethod
    def from_environment(cls, folder: Path | None = None) -> Sealer:
        """The key of `$CHATBOT_SECRET_KEY`, else of `folder`/secret.key (the cache folder), made when missing."""
        env = os.environ.get("CHATBOT_SECRET_KEY", "").strip()
        if env:
            return cls(env.encode("ascii", "replace"))
        path = (folder or cache_dir()) / "secret.key"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # two first starts: one key wins
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def seal(self, value: object) -> str:
        return self._fernet.encrypt(json.dumps(value).encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> object | None:
        try:
            return json.loads(self._fernet.decrypt(sealed.encode("ascii")))
        except (InvalidToken, ValueError):
            return None
