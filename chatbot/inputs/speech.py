"""Speech to text behind one seam: `SpeechToText.transcribe(audio) -> Transcript`.

`WhisperSpeechToText` runs Whisper through faster-whisper (CTranslate2): int8 on CPU, float16 on
CUDA, with Silero voice-activity detection so silence is skipped. Audio is decoded with PyAV, so
whatever browsers and phones send works (webm/opus, ogg, mp3, m4a, wav, any sample rate). Audio
over `max_audio_s` is refused before any transcription. This module knows nothing about questions
or answers: the pipeline turns the transcript into one.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.errors import BadInput, ChatbotError

SAMPLE_RATE = 16_000  # what Whisper works at; faster-whisper resamples to it
MAX_AUDIO_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    audio_s: float  # length of the audio
    asr_s: float  # seconds spent decoding and transcribing


class SpeechToText(Protocol):
    name: str

    def transcribe(self, audio: bytes | str | Path) -> Transcript: ...


def _read(audio: bytes | str | Path) -> bytes:
    if isinstance(audio, (str, Path)):
        path = Path(audio)
        if not path.is_file():
            raise BadInput(f"audio file {path} does not exist")
        audio = path.read_bytes()
    if not isinstance(audio, (bytes, bytearray)) or not audio:
        raise BadInput("the audio is empty; record your question again")
    if len(audio) > MAX_AUDIO_BYTES:
        raise BadInput(f"the audio file is over {MAX_AUDIO_BYTES // 2**20} MB; send a shorter recording")
    return bytes(audio)


class WhisperSpeechToText:
    def __init__(self, model_path: str, name: str, device: str = "auto", max_audio_s: float = 120.0,
                 vad: bool = True, language: str | None = None, threads: int = 0):
        self.model_path = model_path
        self.name = name
        self.requested_device = device
        self.device = "cpu" if device == "auto" else device
        self.max_audio_s = max_audio_s
        self.vad = vad
        self.language = language  # None: detected per recording (multilingual models)
        self.threads = threads
        self._model = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            from faster_whisper import WhisperModel

            from chatbot.answer.llm import pick_device

            self.device = pick_device(self.requested_device)
            compute_type = "float16" if self.device == "cuda" else "int8"
            try:
                self._model = WhisperModel(self.model_path, device=self.device, compute_type=compute_type,
                                           cpu_threads=self.threads)
            except (RuntimeError, ValueError, OSError) as exc:
                raise ChatbotError(f"cannot load the speech model '{self.model_path}' ({exc}); "
                                   "run 'chatbot setup' or set [speech] model to a CTranslate2 Whisper folder") from None

    def decode(self, audio: bytes | str | Path):
        """16 kHz mono float32 samples; refuses what is not audio or is too long."""
        from faster_whisper.audio import decode_audio

        data = _read(audio)
        try:
            samples = decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
        except Exception as exc:  # PyAV raises many types for corrupt or non-audio input
            raise BadInput(f"could not read the audio ({exc.__class__.__name__}); send wav, mp3, ogg, webm or m4a") from None
        seconds = len(samples) / SAMPLE_RATE
        if seconds == 0:
            raise BadInput("the audio has no sound in it; record your question again")
        if seconds > self.max_audio_s:
            raise BadInput(f"the recording is {seconds:.0f} s long; keep voice questions under {self.max_audio_s:.0f} s")
        return samples

    def transcribe(self, audio: bytes | str | Path) -> Transcript:
        started = time.perf_counter()
        samples = self.decode(audio)
        self.warm_up()
        segments, info = self._model.transcribe(samples, language=self.language, beam_size=1,
                                                vad_filter=self.vad, condition_on_previous_text=False)
        text = " ".join(segment.text.strip() for segment in segments).strip()
        if not text:
            raise BadInput("no speech was heard in the recording; speak closer to the microphone or type your question")
        return Transcript(text=text, language=info.language, audio_s=len(samples) / SAMPLE_RATE,
                          asr_s=time.perf_counter() - started)
