"""Every implementation of a model seam passes the same contract tests (tests/contracts.py).

The stand-ins run in milliseconds; the real packaged models are marked e2e (`make test-fast` skips them).
"""

import pytest

from chatbot.answer.llm import OpenAIChatModel
from chatbot.testing import FakeOpenAIServer, FixedImageReader, FixedSpeechToText, ScriptedChatModel
from core.config import GenerationConfig, ModelsConfig, SpeechConfig
from knowledge.testing import HashEmbedder
from tests.contracts import ChatModelContract, EmbedderContract, ImageReaderContract, SpeechToTextContract

e2e = pytest.mark.e2e
PENALTY = GenerationConfig().repetition_penalty


# ---- stand-ins (fast) -----------------------------------------------------------------------


class TestScriptedChatModel(ChatModelContract):
    @pytest.fixture
    def model(self):
        return ScriptedChatModel("You have 30 days from delivery to return an item for a full refund.")


class TestOpenAIChatModelOnAFakeServer(ChatModelContract):
    @pytest.fixture(scope="class")
    @classmethod
    def model(cls):
        with FakeOpenAIServer("You have 30 days from delivery to return an item for a full refund.") as server:
            yield OpenAIChatModel(server.url, "served-model", device="cpu", timeout_s=10)


class TestHashEmbedder(EmbedderContract):
    @pytest.fixture
    def embedder(self):
        return HashEmbedder()


class TestFixedSpeechToText(SpeechToTextContract):
    @pytest.fixture
    def speech(self):
        return FixedSpeechToText()


class TestFixedImageReader(ImageReaderContract):
    expected_words = ("payment", "declined")

    @pytest.fixture
    def reader(self):
        return FixedImageReader("Error 503: payment declined")


# ---- the real packaged models (e2e) ---------------------------------------------------------


@e2e
class TestOpenAIChatModelOnLlamaCpp(ChatModelContract):
    """The openai backend against a real OpenAI-compatible server: llama.cpp serving SmolLM2's GGUF."""

    @pytest.fixture(scope="class")
    def model(self, llm_server):
        from tests.llama_server import MODEL_NAME

        return OpenAIChatModel(llm_server.base_url, MODEL_NAME, device="cpu", timeout_s=60)


@e2e
class TestTransformersChatModel(ChatModelContract):
    @pytest.fixture(scope="class")
    @classmethod
    def model(cls):
        from chatbot.answer.llm import TransformersChatModel
        from chatbot.models import smollm2_path

        return TransformersChatModel(
            smollm2_path(),
            name="smollm2-135m-instruct",
            device="cpu",
            threads=ModelsConfig().threads,
            repetition_penalty=PENALTY,
        )


@e2e
class TestCTranslate2ChatModel(ChatModelContract):
    @pytest.fixture(scope="class")
    @classmethod
    def model(cls):
        from chatbot.answer.llm_ct2 import CTranslate2ChatModel
        from chatbot.models import smollm2_int8_path

        return CTranslate2ChatModel(
            smollm2_int8_path(),
            name="smollm2-135m-instruct-int8",
            device="cpu",
            threads=ModelsConfig().threads,
            repetition_penalty=PENALTY,
        )

    def test_loading_it_leaves_torchs_threads_as_they_were(self):
        """CTranslate2 lowers the OpenMP threads it shares with torch to one per reply; the embedder must keep both cores."""
        import torch

        from chatbot.answer.llm_ct2 import CTranslate2ChatModel
        from chatbot.models import smollm2_int8_path

        before = torch.get_num_threads()
        CTranslate2ChatModel(smollm2_int8_path(), "int8", "cpu", 2, PENALTY, parallel_batches=2).warm_up()
        assert torch.get_num_threads() == before


@e2e
class TestSentenceTransformerEmbedder(EmbedderContract):
    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls):
        from chatbot.models import minilm_path
        from knowledge.embedding import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(minilm_path(), name="all-minilm-l6-v2", device="cpu")


@e2e
class TestWhisperSpeechToText(SpeechToTextContract):
    @pytest.fixture(scope="class")
    @classmethod
    def speech(cls):
        from chatbot.inputs.speech import WhisperSpeechToText
        from chatbot.models import whisper_tiny_en_path

        s = SpeechConfig()
        return WhisperSpeechToText(
            whisper_tiny_en_path(),
            name="whisper-tiny.en",
            device="cpu",
            max_audio_s=s.max_audio_s,
            vad=s.vad,
            language=None,
            threads=ModelsConfig().threads,
        )

    @pytest.fixture(scope="class")
    @classmethod
    def spoken(cls):
        """Real speech, synthesised by the Piper voice the dev extra installs (no espeak needed)."""
        pytest.importorskip("piper", reason="the speech contract speaks with Piper: pip install '.[dev]'")
        from chatbot.outputs.voice_out import PiperVoiceOut

        return PiperVoiceOut("").speak("Where is my order?"), ("order",)


@e2e
class TestTesseractReader(ImageReaderContract):
    @pytest.fixture(scope="class")
    @classmethod
    def reader(cls):
        from chatbot.inputs.vision import TesseractReader, tesseract_available

        if not tesseract_available():
            pytest.skip("Tesseract is not installed: apt-get install tesseract-ocr (make setup does it)")
        return TesseractReader()


@e2e
class TestRapidOcrReader(ImageReaderContract):
    @pytest.fixture(scope="class")
    @classmethod
    def reader(cls):
        from chatbot.inputs.vision import RapidOcrReader

        return RapidOcrReader()
