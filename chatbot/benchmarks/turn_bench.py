"""The speech and turn benchmarks.

`asr`: real-time factor (seconds of computing per second of audio) of our speech input (faster-whisper
int8, greedy, voice-activity detection) against plain faster-whisper `WhisperModel.transcribe` with its
defaults (beam 5) on the same model and the same spoken clips (espeak-ng, offline). `turn`: p50/p95
wall seconds of a text turn through the whole pipeline, by outcome (quoted, LLM-written, suggested,
handed over...), and of a voice turn. It knows nothing about prices; the runner records the figures.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from chatbot.reporting.report import percentile
from chatbot.turns import Turn
from core.errors import ChatbotError

SPOKEN = (
    "How long do I have to send something back?",
    "My order has not arrived yet, what can I do?",
    "Can I change the delivery address after I paid?",
)


def spoken_clips(folder: Path, lines: Sequence[str] = SPOKEN) -> list[Path]:
    """`lines` read aloud by espeak-ng into WAV files in `folder`."""
    if not shutil.which("espeak-ng"):
        raise ChatbotError("the speech benchmark reads questions aloud with espeak-ng: apt-get install espeak-ng")
    clips = []
    for n, line in enumerate(lines):
        path = folder / f"clip{n}.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), line], check=True, capture_output=True)
        clips.append(path)
    return clips


def asr_bench(speech, model_path: str, clips: Sequence[Path]) -> dict:
    """RTF of `speech.transcribe` and of plain faster-whisper on `clips` (after one warm-up each)."""
    from faster_whisper import WhisperModel

    speech.warm_up()
    speech.transcribe(clips[0])
    audio_s = ours_s = 0.0
    for clip in clips:
        transcript = speech.transcribe(clip)
        audio_s += transcript.audio_s
        ours_s += transcript.asr_s
    plain = WhisperModel(model_path, device="cpu", compute_type="default")
    list(plain.transcribe(str(clips[0]))[0])
    began = time.perf_counter()
    for clip in clips:
        list(plain.transcribe(str(clip))[0])  # segments are lazy: decoding happens here
    base_s = time.perf_counter() - began
    return {
        "clips": len(clips),
        "audio_s": round(audio_s, 1),
        "rtf": round(ours_s / audio_s, 3),
        "baseline_rtf": round(base_s / audio_s, 3),
        "speedup": round(base_s / ours_s, 2) if ours_s else None,
    }


def turn_bench(pipeline, questions: Sequence[str], clips: Sequence[Path] = ()) -> dict:
    """p50/p95 seconds of text turns by outcome, each question a new conversation; and of voice turns."""
    by_outcome: dict[str, list[float]] = defaultdict(list)
    pipeline.warm_up()
    for question in questions:
        began = time.perf_counter()
        reply = pipeline.ask(question)
        by_outcome[reply.outcome.value].append(time.perf_counter() - began)
    out = {outcome: _spread(times) for outcome, times in sorted(by_outcome.items())}
    voice = []
    for clip in clips:
        began = time.perf_counter()
        pipeline.ask(Turn(audio=clip.read_bytes()))
        voice.append(time.perf_counter() - began)
    if voice:
        out["voice"] = _spread(voice)
    return out


def _spread(times: Sequence[float]) -> dict:
    return {
        "p50_s": round(statistics.median(times), 3),
        "p95_s": round(percentile(times, 0.95), 3),
        "turns": len(times),
    }


def clips_folder() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="chatbot-bench-")
