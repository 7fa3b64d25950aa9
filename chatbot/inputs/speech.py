"""Speech to text behind one seam: `SpeechToText.transcribe(audio) -> Transcript`.

`WhisperSpeechToText` runs Whisper through faster-whisper (CTranslate2): int8 on CPU, float16 on
CUDA, with Silero voice-activity detection so silence is skipped. Audio is decoded with PyAV, so
whatever browsers and phones send works (webm/opus, ogg, mp3, m4a, wav, any sample rate). Audio
over `max_audio_s` is refused before any transcription. This module knows nothing about questions
or answers: the pipeline turns the transcript into one.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.errors import BadInput, ChatbotError
from core.lazy import Lazy

SAMPLE_RATE = 16_000  # what Whisper works at; faster-whisper resamples to it
MAX_AUDIO_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    audio_s: float  # length of the audio
    asr_s: float  # seconds spent decoding and transcribing


class SpeechToText(Protocol):
    """What the pipeline uses for voice questions; `chatbot.testing.SpeechToTextContract` tests it."""

    name: str  # the configured model name

    def warm_up(self) -> None: ...  # load the model now rather than on the first recording

    def transcribe(self, audio: bytes | str | Path) -> Transcript:
        """The words spoken; `BadInput` for what is not audio, too long, or holds no speech."""
        ...


def read_audio(audio: bytes | str | Path) -> bytes:
    """The bytes of a recording (given as bytes or a path); `BadInput` when missing, empty or too big."""
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
    def __init__(
        self, model_path: str, name: str, device: str, max_audio_s: float, vad: bool, language: str | None, threads: int
    ):
        self.model_path = model_path
        self.name = name
        self.requested_device = device  # "auto", "cpu" or "cuda"
        self.device = "cpu" if device == "auto" else device  # settled by warm_up()
        self.max_audio_s = max_audio_s
        self.vad = vad
        self.language = language  # None: detected per recording (multilingual models)
        self.threads = threads  # 0: CTranslate2's default
        self._model = Lazy(self._load)

    def _load(self):
        from faster_whisper import WhisperModel

        from chatbot.answer.llm import pick_device

        self.device = pick_device(self.requested_device)
        compute_type = "float16" if self.device == "cuda" else "int8"
        try:
            return WhisperModel(
                self.model_path, device=self.device, compute_type=compute_type, cpu_threads=self.threads
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ChatbotError(
                f"cannot load the speech model '{self.model_path}' ({exc}); "
                "run 'chatbot setup' or set [speech] model to a CTranslate2 Whisper folder"
            ) from None

    def warm_up(self) -> None:
        self._model.get()

    def decode(self, audio: bytes | str | Path):
        """16 kHz mono float32 samples; refuses what is not audio or is too long."""
        from faster_whisper.audio import decode_audio

        data = read_audio(audio)
        try:
            samples = decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
        except Exception as exc:  # PyAV raises many types for corrupt or non-audio input
            raise BadInput(
                f"could not read the audio ({exc.__class__.__name__}); send wav, mp3, ogg, webm or m4a"
            ) from None
        seconds = len(samples) / SAMPLE_RATE
        if seconds == 0:
            raise BadInput("the audio has no sound in it; record your question again")
        if seconds > self.max_audio_s:
            raise BadInput(
                f"the recording is {seconds:.0f} s long; keep voice questions under {self.max_audio_s:.0f} s"
            )
        return samples

    def transcribe(self, audio: bytes | str | Path) -> Transcript:
        started = time.perf_counter()
        samples = self.decode(audio)
        segments, info = self._model.get().transcribe(
            samples, language=self.language, beam_size=1, vad_filter=self.vad, condition_on_previous_text=False
        )
        text = " ".join(segment.text.strip() for segment in segments).strip()
        if not text:
            raise BadInput("no speech was heard in the recording; speak closer to the microphone or type your question")
        return Transcript(
            text=text, language=info.language, audio_s=len(samples) / SAMPLE_RATE, asr_s=time.perf_counter() - started
        )
