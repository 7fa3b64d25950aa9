"""Voice and screenshot benchmark: WER and real-time factor of Whisper tiny.en vs base, voice-turn
latency, and OCR accuracy on rendered screenshots.

Spoken questions: the demo questions (demo/questions.jsonl) synthesised with espeak-ng in two
voices and two speeds, converted to 16 kHz WAV and 48 kHz OGG/Opus-like containers where the
local tools allow. Screenshots: order/app pages rendered with Pillow in two fonts and sizes.
Both models run side by side on the same clips, warm, so the ratios are fair.
Usage: .venv/bin/python bench/voice.py [--limit N] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from difflib import SequenceMatcher
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chatbot.builder import build_index, build_pipeline, build_speech, build_vision  # noqa: E402
from core.config import load_config  # noqa: E402
from chatbot.reporting.report import percentile  # noqa: E402
from knowledge.ingest import iter_documents  # noqa: E402

VOICES = [("en-gb", 160), ("en-us", 185)]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def words(text: str) -> list[str]:
    text = text.lower().replace("-", " ")
    return re.findall(r"[a-z0-9£']+", text.replace("'", ""))


_normalise = None


def normalise(text: str) -> str:
    """Whisper's own English normaliser (whisper-normalizer): lower case, no punctuation, spelled
    numbers as digits ("thirty" -> "30"), "Mr." -> "mister", British spellings -> American. Both
    sides of a WER go through it, so only what was heard differently counts as an error."""
    global _normalise
    if _normalise is None:
        from whisper_normalizer.english import EnglishTextNormalizer

        _normalise = EnglishTextNormalizer()
    return _normalise(text)


def wer(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits: substitutions + deletions + insertions, reference length), by jiwer, after `normalise`."""
    import jiwer

    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref.split():
        return len(hyp.split()), 0
    if not hyp.split():
        return len(ref.split()), len(ref.split())
    out = jiwer.process_words(ref, hyp)
    return out.substitutions + out.deletions + out.insertions, out.substitutions + out.deletions + out.hits


def synthesise(questions: list[str], folder: Path) -> list[tuple[str, Path]]:
    if not shutil.which("espeak-ng"):
        sys.exit("espeak-ng is needed: apt-get install espeak-ng")
    clips = []
    for i, q in enumerate(questions):
        voice, speed = VOICES[i % len(VOICES)]
        path = folder / f"q{i:02d}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), q], check=True)
        clips.append((q, path))
    return clips


def speech_bench(config, clips) -> dict:
    results = {}
    for model in ("whisper-tiny.en", "whisper-base"):
        stt = build_speech(config.with_overrides({"speech": {"model": model}}))
        stt.warm_up()
        stt.transcribe(clips[0][1])  # first call pays one-off set-up costs
        errors = total = 0
        audio_s = asr_s = 0.0
        samples = []
        for reference, path in clips:
            t = stt.transcribe(path)
            e, n = wer(reference, t.text)
            errors, total = errors + e, total + n
            audio_s += t.audio_s
            asr_s += t.asr_s
            if len(samples) < 4:
                samples.append({"said": reference, "heard": t.text})
        results[model] = {
            "wer": round(errors / total, 3),
            "rtf": round(asr_s / audio_s, 3),
            "audio_s": round(audio_s, 1),
            "clips": len(clips),
            "samples": samples,
        }
        log(f"{model}: WER {results[model]['wer']:.3f}, RTF {results[model]['rtf']:.3f}")
    return results


SCREENS = [
    ["Lumen & Oak - My orders", "Order 40012345 placed 12 March", "Status: Dispatched", "Tracking: no updates yet"],
    ["Lumen Home", "Halo Smart Lamp is flashing red", "Cannot connect to Wi-Fi network", "Use a 2.4 GHz network"],
    ["Checkout", "Payment declined", "Your card issuer declined this payment.", "Try another card or PayPal"],
    ["Reset your password", "This link has expired", "Reset links are valid for 30 minutes", "Send a new link"],
]


def render(lines: list[str], path: Path, font_size: int, font_name: str) -> None:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (1000, 80 + int(font_size * 2.2) * len(lines)), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.truetype(font_name, font_size)
    except OSError:
        font = ImageFont.load_default(size=font_size)
    for i, line in enumerate(lines):
        draw.text((40, 40 + int(font_size * 2.2) * i), line, fill=(20, 20, 20), font=font)
    image.save(path)


def ocr_bench(config, folder: Path) -> dict:
    results = {}
    for engine in ("tesseract", "rapidocr"):
        try:
            reader = build_vision(config.with_overrides({"vision": {"engine": engine}}))
        except Exception as exc:  # noqa: BLE001 - an engine not installed is reported, not fatal
            results[engine] = {"error": str(exc)}
            continue
        reader.warm_up()
        ratios, seconds, word_hits, word_total = [], [], 0, 0
        for i, lines in enumerate(SCREENS):
            for size, font in ((28, "DejaVuSans.ttf"), (18, "DejaVuSerif.ttf")):
                path = folder / f"screen{i}-{size}.png"
                render(lines, path, size, font)
                result = reader.read(path)
                truth = " ".join(lines)
                got = " ".join(result.text.split())
                ratios.append(SequenceMatcher(None, truth.lower(), got.lower()).ratio())
                seconds.append(result.ocr_s)
                expected = words(truth)
                found = set(words(got))
                word_hits += sum(1 for w in expected if w in found)
                word_total += len(expected)
        results[engine] = {
            "char_similarity": round(statistics.mean(ratios), 3),
            "word_recall": round(word_hits / word_total, 3),
            "seconds_per_image": round(statistics.mean(seconds), 2),
            "images": len(ratios),
        }
        log(f"OCR {engine}: {results[engine]}")
    return results


def voice_turns(config, clips, out: Path) -> dict:
    index_dir = out / "index-demo"
    config = config.with_overrides(
        {"index_dir": str(index_dir), "db_url": f"sqlite:///{out}/voice.db", "company_name": "Lumen & Oak"}
    )
    build_index(config).ingest(
        iter_documents([str(ROOT / "demo/help-centre")]), config.chunking.max_chars, config.chunking.overlap_chars
    )
    pipeline = build_pipeline(config, speech=True)
    pipeline.warm_up()
    latencies, asr, llm = [], [], []
    for _, path in clips:
        started = time.perf_counter()
        reply = pipeline.ask(pipeline.prepare(audio=path.read_bytes()))
        latencies.append(time.perf_counter() - started)
        asr.append(reply.usage.asr_s)
        llm.append(reply.usage.llm_s)
    return {
        "turns": len(latencies),
        "p50_s": round(percentile(latencies, 0.5), 2),
        "p95_s": round(percentile(latencies, 0.95), 2),
        "mean_asr_s": round(statistics.mean(asr), 2),
        "mean_llm_s": round(statistics.mean(llm), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "bench/results"))
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    questions = [
        json.loads(x)["question"] for x in (ROOT / "demo/questions.jsonl").read_text().splitlines() if x.strip()
    ]
    config = load_config()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = synthesise(questions[: args.limit], folder)
        report = {
            "speech": speech_bench(config, clips),
            "ocr": ocr_bench(config, folder),
            "voice_turn": voice_turns(config, clips[:8], out),
        }
    (out / "voice.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
