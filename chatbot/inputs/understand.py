"""A turn as text: a voice question transcribed, a screenshot read (OCR), the question checked; what reading
them cost. Errors are customer-readable `BadInput`s. Knows nothing of retrieval or answers.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from chatbot.records.costs import Usage
from chatbot.turns import Turn, _Understood
from core.errors import BadInput
from core.text import clean_text

if TYPE_CHECKING:
    from chatbot.inputs.speech import SpeechToText
    from chatbot.inputs.vision import ImageReader

MAX_QUESTION_CHARS = 2_000


def clean_question(text: object) -> str:
    """The question as stored and answered; `BadInput` (customer-readable) when unusable."""
    return clean_text(text, "question", MAX_QUESTION_CHARS, hint="type a question")


def understand(turn: Turn, speech: SpeechToText | None, vision: ImageReader | None, device: str) -> _Understood:
    """Transcribe a voice question and read a screenshot with the engine's `speech` and `vision` (None: not
    enabled); `device` is where the turn is metered."""
    if turn.audio is None and turn.image is None:
        return _Understood(clean_question(turn.text), "", Usage(device=device), {})
    if turn.text is not None and not isinstance(turn.text, str):
        raise BadInput("the question must be text")
    usage = Usage(device=device)
    extra: dict = {}
    question = (turn.text or "").strip()
    if turn.audio is not None:
        if speech is None:
            raise BadInput("voice questions are not enabled here; please type your question")
        transcript = speech.transcribe(turn.audio)
        usage = replace(usage, asr_s=transcript.asr_s, audio_s=transcript.audio_s)
        extra["transcript"] = {
            "text": transcript.text,
            "language": transcript.language,
            "audio_s": round(transcript.audio_s, 2),
        }
        question = f"{question} {transcript.text}".strip()
    image_text = ""
    if turn.image is not None:
        if vision is None:
            raise BadInput("screenshots are not enabled here; please type what the screen says")
        ocr = vision.read(turn.image)
        usage = replace(usage, ocr_s=ocr.ocr_s)
        image_text = ocr.text
        extra["ocr"] = {"text": ocr.text, "engine": ocr.engine}
        question = question or "Can you help me with this screenshot?"
    return _Understood(clean_question(question), image_text, usage, extra)
