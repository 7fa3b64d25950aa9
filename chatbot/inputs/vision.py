"""Text from screenshots behind one seam: `ImageReader.read(image) -> OcrResult`.

Tesseract (through pytesseract) when its binary is installed, else RapidOCR from its wheel. The
image is checked with Pillow first: not an image, too many bytes or pixels, or no text found are
clear errors. This module knows nothing about questions: the pipeline joins the text to one.
"""

from __future__ import annotations

import io
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.errors import BadInput, ConfigError
from core.lazy import Lazy

MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000
MAX_OCR_CHARS = 2_000  # what joins the question; a screenshot of a whole page is cut


@dataclass(frozen=True)
class OcrResult:
    text: str
    ocr_s: float
    engine: str


class ImageReader(Protocol):
    """What the pipeline uses for screenshots; `chatbot.testing.ImageReaderContract` tests it."""

    name: str  # the OCR engine

    def warm_up(self) -> None: ...  # load the engine now rather than on the first screenshot

    def read(self, image: bytes | str | Path) -> OcrResult:
        """The text in the image; `BadInput` for what is not an image, too large, or has no text."""
        ...


def load_image(image: bytes | str | Path):
    """A Pillow RGB image, or a customer-readable error."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise BadInput(f"image file {path} does not exist")
        image = path.read_bytes()
    if not isinstance(image, (bytes, bytearray)) or not image:
        raise BadInput("the image is empty; attach a screenshot (PNG or JPEG)")
    if len(image) > MAX_IMAGE_BYTES:
        raise BadInput(f"the image is over {MAX_IMAGE_BYTES // 2**20} MB; send a smaller screenshot")
    try:
        picture = Image.open(io.BytesIO(image))
        if picture.width * picture.height > MAX_PIXELS:
            raise BadInput("the image is too large; send a screenshot under 40 megapixels")
        picture.load()
    except BadInput:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise BadInput("that file is not an image we can read; attach a PNG or JPEG screenshot") from None
    return picture.convert("RGB")


def _tidy(text: str) -> str:
    lines = [re.sub(r"\s+", " ", line).strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line)[:MAX_OCR_CHARS]


class TesseractReader:
    name = "tesseract"

    def __init__(self, language: str = "eng"):
        self.language = language

    def warm_up(self) -> None:
        pass

    def read(self, image: bytes | str | Path) -> OcrResult:
        import pytesseract

        started = time.perf_counter()
        picture = load_image(image)
        if picture.width < 1000:  # Tesseract reads small UI text better upscaled
            scale = 1000 / picture.width
            picture = picture.resize((int(picture.width * scale), int(picture.height * scale)))
        text = _tidy(pytesseract.image_to_string(picture, lang=self.language))
        return _checked(OcrResult(text, time.perf_counter() - started, self.name))


class RapidOcrReader:
    name = "rapidocr"

    def __init__(self):
        self._engine = Lazy(self._load)

    @staticmethod
    def _load():
        from rapidocr_onnxruntime import RapidOCR

        return RapidOCR()

    def warm_up(self) -> None:
        self._engine.get()

    def read(self, image: bytes | str | Path) -> OcrResult:
        import numpy as np

        started = time.perf_counter()
        picture = load_image(image)
        result, _ = self._engine.get()(np.asarray(picture))
        text = _tidy("\n".join(line[1] for line in (result or [])))
        return _checked(OcrResult(text, time.perf_counter() - started, self.name))


def _checked(result: OcrResult) -> OcrResult:
    if len(re.findall(r"[A-Za-z0-9]", result.text)) < 3:
        raise BadInput("no text was found in the image; attach a clearer screenshot or type your question")
    return result


def tesseract_available() -> bool:
    try:
        import pytesseract  # noqa: F401
    except ImportError:
        return False
    return shutil.which("tesseract") is not None


def build_reader(engine: str = "auto") -> ImageReader:
    """ "auto": Tesseract when installed, else RapidOCR."""
    if engine == "auto":
        engine = "tesseract" if tesseract_available() else "rapidocr"
    if engine == "tesseract":
        if not tesseract_available():
            raise ConfigError(
                "[vision] engine 'tesseract' needs: apt-get install tesseract-ocr; pip install pytesseract"
            )
        return TesseractReader()
    if engine == "rapidocr":
        return RapidOcrReader()
    raise ConfigError(f"unknown [vision] engine '{engine}'; choose auto, tesseract or rapidocr")
