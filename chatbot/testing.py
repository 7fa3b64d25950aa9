"""Test helpers that ship with the package (as Haystack ships its mock components and base tests).

Stand-ins for the model seams, deterministic and model-free, for unit tests of what is around them:
- `ScriptedChatModel`: a `ChatModel` that answers every prompt with one scripted reply;
- `FixedSpeechToText`: a `SpeechToText` that hears the same words in any WAV recording;
- `FixedImageReader`: an `ImageReader` that reads the same text in any image with something drawn on it;
- `FakeOpenAIServer`: a loopback OpenAI-compatible `/v1/chat/completions` server for `OpenAIChatModel`;
- `price_sheet()`: the default `PriceSheet`, with changes;
- `scripted_pipeline()`: the engine wired as the builder wires it, over a test index and a stand-in LLM;
- `tone_wav()`, `screenshot_png()`: a short WAV and a rendered screenshot, made without any model.
(`knowledge.testing.HashEmbedder` is the `Embedder` stand-in.)

Nothing here imports pytest: a user can import the stand-ins without it. The contract tests, one base
class per seam (`ChatModelContract`, `SpeechToTextContract`, `ImageReaderContract`,
`EmbedderContract`), live in `tests/contracts.py`.
"""

from __future__ import annotations

import io
import json
import math
import struct
import threading
import time
import wave
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


from chatbot.answer.llm import Message, Token
from chatbot.inputs.speech import Transcript, read_audio
from chatbot.inputs.vision import OcrResult, load_image
from chatbot.records.costs import PriceSheet
from core.config import PricesConfig
from core.errors import BadInput

# ---- stand-ins ------------------------------------------------------------------------------


class ScriptedChatModel:
    """Answers every prompt with `reply`, one word per token, cut at `max_new_tokens` words.

    `error`: raised instead of answering (a backend failing mid-turn). `device`: what the cost
    meter is told. `prompts` records every message list it was asked, `warmed` whether
    `warm_up()` ran. Token counts: the prompt's whitespace-separated words, the words replied.
    """

    def __init__(self, reply: str = "", error: Exception | None = None, device: str = "cpu", name: str = "scripted"):
        self.reply = reply
        self.error = error
        self.device = device
        self.name = name
        self.prompts: list[list[Message]] = []
        self.warmed = False

    def warm_up(self) -> None:
        self.warmed = True

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[Token]:
        self.prompts.append(messages)
        if self.error:
            raise self.error
        words = self.reply.split(" ")[: max(0, max_new_tokens)] if self.reply else []
        for i, word in enumerate(words):
            yield Token(word if i == 0 else " " + word)
        yield Token(
            "", done=True, prompt_tokens=sum(len(m.content.split()) for m in messages), completion_tokens=len(words)
        )


class FixedSpeechToText:
    """Hears `text` in any WAV recording (Python's `wave` reads it: no model, no PyAV).

    Refuses (`BadInput`) what the real one refuses: a missing file, empty or non-WAV bytes,
    a recording with no frames, and one over `max_audio_s` seconds.
    `heard` records the length in seconds of each recording transcribed.
    """

    name = "fixed-speech"

    def __init__(self, text: str = "Where is my order?", language: str = "en", max_audio_s: float = 120.0):
        self.text = text
        self.language = language
        self.max_audio_s = max_audio_s
        self.heard: list[float] = []

    def warm_up(self) -> None:
        pass

    def transcribe(self, audio: bytes | str | Path) -> Transcript:
        started = time.perf_counter()
        data = read_audio(audio)
        try:
            with wave.open(io.BytesIO(data)) as w:
                seconds = w.getnframes() / w.getframerate()
        except (wave.Error, EOFError, ZeroDivisionError, struct.error):
            raise BadInput("could not read the audio; send a WAV recording") from None
        if seconds == 0:
            raise BadInput("the audio has no sound in it; record your question again")
        if seconds > self.max_audio_s:
            raise BadInput(
                f"the recording is {seconds:.0f} s long; keep voice questions under {self.max_audio_s:.0f} s"
            )
        self.heard.append(seconds)
        return Transcript(self.text, self.language, seconds, time.perf_counter() - started)


class FixedImageReader:
    """Reads `text` in any image that is not a single flat colour (checked with Pillow; no OCR).

    Refuses what the real readers refuse: not an image, too many bytes or pixels, nothing on it.
    `seen` records the (width, height) of each image read.
    """

    name = "fixed-ocr"

    def __init__(self, text: str = "Error 503: payment declined"):
        self.text = text
        self.seen: list[tuple[int, int]] = []

    def warm_up(self) -> None:
        pass

    def read(self, image: bytes | str | Path) -> OcrResult:
        started = time.perf_counter()
        picture = load_image(image)
        if all(low == high for low, high in picture.getextrema()):
            raise BadInput("no text was found in the image; attach a clearer screenshot or type your question")
        self.seen.append(picture.size)
        return OcrResult(self.text, time.perf_counter() - started, self.name)


def price_sheet(**changes) -> PriceSheet:
    """The `PriceSheet` of the default `[prices]`, with `changes` (keyword arguments of `PriceSheet.from_table`)."""
    p = PricesConfig()
    values = dict(
        hardware_usd_per_hour=p.hardware_usd_per_hour,
        device_share=p.device_share,
        api_model=p.api_model,
        api_usd_per_million_tokens=p.api_usd_per_million_tokens,
        api_asr_usd_per_minute=p.api_asr_usd_per_minute,
        human_agent_usd_per_conversation=p.human_agent_usd_per_conversation,
    )
    values.update(changes)
    return PriceSheet.from_table(**values)


# ---- inputs made without a model ------------------------------------------------------------


def tone_wav(seconds: float = 1.0, hz: float = 440.0, rate: int = 16_000) -> bytes:
    """A mono 16-bit WAV of a sine tone (no speech in it: for fakes and format checks)."""
    frames = b"".join(
        struct.pack("<h", int(12_000 * math.sin(2 * math.pi * hz * i / rate))) for i in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return buffer.getvalue()


SCREENSHOT_LINES = ("Error 503: payment declined", "Order 10442 could not be charged")


def screenshot_png(lines: Sequence[str] = SCREENSHOT_LINES, size: int = 28) -> bytes:
    """Black text on white, one line each, drawn with Pillow (DejaVu Sans when installed)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (960, 90 + 60 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        font = ImageFont.load_default(size=size)
    for i, line in enumerate(lines):
        draw.text((40, 40 + 60 * i), line, fill="black", font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def blank_png(width: int = 640, height: int = 200) -> bytes:
    """A white image with nothing on it."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, format="PNG")
    return buffer.getvalue()


# ---- a loopback OpenAI-compatible server ----------------------------------------------------


class FakeOpenAIServer:
    """An OpenAI-compatible `/v1/chat/completions` server on a free loopback port, streaming `reply`.

    It streams server-sent `chat.completion.chunk` events, one per word of `reply`, cut at the
    request's `max_tokens`, then a usage event (when `stream_options.include_usage`) and `[DONE]`.
    `prompt_tokens`: the usage it reports (None: the words in the request's messages). The first
    `fail_first` requests get a 503 (with a 10 ms `retry-after-ms`), to test retries. `requests`
    holds every request body. Use it as a context manager; `url` is the base URL to configure.
    """

    def __init__(self, reply: str = "Returns take 30 days.", prompt_tokens: int | None = None, fail_first: int = 0):
        self.reply = reply
        self.prompt_tokens = prompt_tokens
        self.fail_first = fail_first
        self.requests: list[dict] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first (use it in a with block)"
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                fake.requests.append(body)
                if len(fake.requests) <= fake.fail_first:
                    self._send(
                        503, "application/json", b'{"error": {"message": "loading model"}}', {"retry-after-ms": "10"}
                    )
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, "application/json", b'{"error": {"message": "not found"}}')
                    return
                self._send(200, "text/event-stream", b"")
                for event in fake._events(body):
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

            def _send(self, status: int, kind: str, payload: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                if status != 200:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _events(self, body: dict) -> Iterator[dict]:
        limit = int(body.get("max_tokens") or body.get("max_completion_tokens") or 1_000_000)
        words = self.reply.split(" ")[:limit] if self.reply else []
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", ""),
        }
        for i, word in enumerate(words):
            delta = {"content": word if i == 0 else " " + word}
            if i == 0:
                delta["role"] = "assistant"
            yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        finish = "length" if len(words) < len(self.reply.split(" ")) else "stop"
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        if (body.get("stream_options") or {}).get("include_usage"):
            prompt = self.prompt_tokens
            if prompt is None:
                prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
            yield {
                **base,
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": len(words),
                    "total_tokens": prompt + len(words),
                },
            }


def scripted_pipeline(config, index, llm, db_url: str, settings=None, webhook=None):
    """A `Pipeline` wired by `chatbot.builder.wire_pipeline` (desk and help-centre answers included) over a
    loaded `index` (usually `HashEmbedder`'s) and a stand-in `llm`, storing in `db_url`; the grounding
    check at overlap 0.5 and cosine 0.3, which suit `HashEmbedder`'s vectors. `settings`: instead of
    `build_settings(config)`; `webhook`: a sender for the desk."""
    from chatbot.answer.grounding import GroundingChecker
    from chatbot.builder import wire_pipeline

    return wire_pipeline(
        config.model_copy(update={"db_url": db_url}),
        index,
        llm,
        GroundingChecker(index.embedder, 0.5, 0.3, 2),
        settings=settings,
        webhook=webhook,
    )
