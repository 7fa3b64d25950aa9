"""Contract tests, one base class per model seam: subclass one in a test module and override its fixture
(`model`, `speech`, `reader`, `embedder`) to run the same tests on an implementation, as Haystack's
base component tests do. The stand-ins they are run on live in `chatbot.testing` and
`knowledge.testing`, which do not import pytest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from chatbot.answer.llm import ChatModel, Message, Token
from chatbot.inputs.speech import SpeechToText, Transcript
from chatbot.inputs.vision import ImageReader, OcrResult
from chatbot.testing import blank_png, screenshot_png, tone_wav
from core.errors import BadInput
from knowledge.embedding import Embedder
from knowledge.testing import _unit


QUESTION = [
    Message("system", "You are a helpful customer-service assistant. Answer briefly."),
    Message("user", "How long do I have to return an item?"),
]


class ChatModelContract:
    """What the pipeline relies on from any `ChatModel`; override the `model` fixture."""

    @pytest.fixture
    def model(self) -> ChatModel:
        raise NotImplementedError("override the `model` fixture with the implementation under test")

    def test_it_has_a_name_and_a_device_after_warm_up(self, model):
        model.warm_up()
        assert isinstance(model.name, str) and model.name
        assert model.device in ("cpu", "cuda")

    def test_stream_yields_text_then_exactly_one_done_token_with_counts(self, model):
        tokens = list(model.stream(QUESTION, max_new_tokens=12))
        assert all(isinstance(t, Token) for t in tokens)
        assert tokens and tokens[-1].done and sum(t.done for t in tokens) == 1
        pieces = tokens[:-1]
        assert pieces and all(isinstance(t.text, str) and t.text for t in pieces)
        assert "".join(t.text for t in pieces).strip()
        assert all(t.prompt_tokens == t.completion_tokens == 0 for t in pieces)
        done = tokens[-1]
        assert done.text == "" and done.prompt_tokens > 0 and 0 < done.completion_tokens <= 12

    def test_max_new_tokens_is_respected(self, model):
        short = list(model.stream(QUESTION, max_new_tokens=3))
        longer = list(model.stream(QUESTION, max_new_tokens=12))
        assert 0 < short[-1].completion_tokens <= 3
        assert len("".join(t.text for t in short)) <= len("".join(t.text for t in longer))

    def test_stream_is_lazy_and_repeatable(self, model):
        first = model.stream(QUESTION, max_new_tokens=4)
        assert iter(first) is first  # a generator: nothing runs until it is consumed
        again = [t.text for t in model.stream(QUESTION, max_new_tokens=4)]
        assert [t.text for t in first] == again  # greedy decoding: the same prompt, the same reply


class SpeechToTextContract:
    """What the pipeline relies on from any `SpeechToText`; override the `speech` fixture.

    `spoken` is a WAV of speech and words expected in its transcript; the default is a tone (fine
    for stand-ins); a real recogniser needs a subclass to give real speech.
    """

    @pytest.fixture
    def speech(self) -> SpeechToText:
        raise NotImplementedError("override the `speech` fixture with the implementation under test")

    @pytest.fixture
    def spoken(self) -> tuple[bytes, Sequence[str]]:
        return tone_wav(1.5), ()

    def test_it_has_a_name_and_warms_up(self, speech):
        speech.warm_up()
        assert isinstance(speech.name, str) and speech.name

    def test_a_recording_gives_text_and_its_length(self, speech, spoken):
        audio, words = spoken
        transcript = speech.transcribe(audio)
        assert isinstance(transcript, Transcript) and transcript.text.strip()
        assert transcript.audio_s > 0 and transcript.asr_s >= 0 and transcript.language
        for word in words:
            assert word.lower() in transcript.text.lower()

    def test_a_file_path_is_read_like_bytes(self, speech, spoken, tmp_path):
        path = tmp_path / "question.wav"
        path.write_bytes(spoken[0])
        assert speech.transcribe(path).audio_s == pytest.approx(speech.transcribe(spoken[0]).audio_s, abs=0.05)

    @pytest.mark.parametrize("audio", [b"", b"this is not audio at all " * 40, b"RIFF\x00\x00\x00\x00WAVEfmt "])
    def test_empty_or_corrupt_audio_is_bad_input(self, speech, audio):
        with pytest.raises(BadInput):
            speech.transcribe(audio)

    def test_a_missing_file_is_bad_input(self, speech, tmp_path):
        with pytest.raises(BadInput, match="does not exist"):
            speech.transcribe(tmp_path / "nothing.wav")


class ImageReaderContract:
    """What the pipeline relies on from any `ImageReader`; override the `reader` fixture.

    The screenshot drawn is `SCREENSHOT_LINES`; `expected_words` are the words a reader must find
    in it (a stand-in that returns fixed text sets it to fit that text).
    """

    expected_words: Sequence[str] = ("payment", "declined")

    @pytest.fixture
    def reader(self) -> ImageReader:
        raise NotImplementedError("override the `reader` fixture with the implementation under test")

    def test_it_has_a_name_and_warms_up(self, reader):
        reader.warm_up()
        assert isinstance(reader.name, str) and reader.name

    def test_a_rendered_screenshot_gives_its_text(self, reader):
        result = reader.read(screenshot_png())
        assert isinstance(result, OcrResult) and result.engine == reader.name and result.ocr_s >= 0
        for word in self.expected_words:
            assert word.lower() in result.text.lower()

    def test_a_file_path_is_read_like_bytes(self, reader, tmp_path):
        path = tmp_path / "screenshot.png"
        path.write_bytes(screenshot_png())
        assert reader.read(path).text == reader.read(screenshot_png()).text

    @pytest.mark.parametrize("image", [b"", b"\x89PNG\r\n\x1a\n this is not a picture", b"GIF89a" + bytes(40)])
    def test_empty_or_corrupt_images_are_bad_input(self, reader, image):
        with pytest.raises(BadInput):
            reader.read(image)

    def test_an_image_without_text_is_bad_input(self, reader):
        with pytest.raises(BadInput, match="no text"):
            reader.read(blank_png())


class EmbedderContract:
    """What the index, the searcher and the grounding checker rely on from any `Embedder`."""

    @pytest.fixture
    def embedder(self) -> Embedder:
        raise NotImplementedError("override the `embedder` fixture with the implementation under test")

    def test_it_has_a_name_and_warms_up(self, embedder):
        embedder.warm_up()
        assert isinstance(embedder.name, str) and embedder.name
        assert isinstance(embedder.dimension, int) and embedder.dimension > 0

    def test_rows_are_float32_unit_vectors_one_per_text(self, embedder):
        vectors = embedder.embed(["Where is my order?", "How do I return a lamp?", "Reset my password"])
        assert isinstance(vectors, np.ndarray) and vectors.dtype == np.float32
        assert vectors.shape == (3, embedder.dimension) and vectors.flags.c_contiguous
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)

    def test_equal_texts_give_equal_vectors_alone_or_in_a_batch(self, embedder):
        batch = embedder.embed(["Where is my order?", "Standard delivery costs 3.95 pounds.", "Where is my order?"])
        alone = embedder.embed(["Where is my order?"])
        np.testing.assert_allclose(batch[0], batch[2], atol=1e-5)
        np.testing.assert_allclose(batch[0], alone[0], atol=1e-4)

    def test_an_empty_list_gives_zero_rows(self, embedder):
        vectors = embedder.embed([])
        assert vectors.shape == (0, embedder.dimension) and vectors.dtype == np.float32

    def test_many_texts_with_a_progress_bar_give_the_same_rows_in_order(self, embedder):
        texts = [f"question number {i} about order {i * 7}" for i in range(70)]
        quiet = embedder.embed(texts)
        shown = embedder.embed(texts, show_progress=True)
        assert quiet.shape == (70, embedder.dimension)
        np.testing.assert_allclose(quiet, shown, atol=1e-4)
        np.testing.assert_allclose(quiet[41], embedder.embed([texts[41]])[0], atol=1e-4)

    def test_a_paraphrase_is_closer_than_an_unrelated_text(self, embedder):
        question, paraphrase, unrelated = embedder.embed(
            ["How do I return a lamp?", "returning a lamp", "reset my password"]
        )
        assert float(_unit(question) @ _unit(paraphrase)) > float(_unit(question) @ _unit(unrelated))
