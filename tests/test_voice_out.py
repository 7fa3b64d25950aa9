import io
import wave

import pytest

from chatbot.outputs.voice_out import PiperVoiceOut, speakable

REPLY = "Start your return within 30 days of delivery [1]. A free label comes by email [2][3]."
SPOKEN = "Start your return within 30 days of delivery. A free label comes by email."


def test_citation_marks_are_left_out_of_what_is_spoken():
    assert speakable(REPLY) == SPOKEN
    assert speakable("Orders over 40 pounds [1] ship free.") == "Orders over 40 pounds ship free."


@pytest.mark.e2e
def test_piper_reads_a_reply_aloud_without_citation_marks(monkeypatch):
    from piper import PiperVoice

    spoken: list[str] = []
    synthesize = PiperVoice.synthesize_wav

    def recording(voice, text, *args, **kwargs):
        spoken.append(text)
        return synthesize(voice, text, *args, **kwargs)

    monkeypatch.setattr(PiperVoice, "synthesize_wav", recording)
    audio = PiperVoiceOut("").speak(REPLY)
    assert spoken == [SPOKEN]  # the voice is given the reply without "[1]", "[2][3]"
    with wave.open(io.BytesIO(audio)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert 2.0 < seconds < 12.0
