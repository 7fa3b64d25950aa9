import io
import wave

from chatbot.outputs.voice_out import PiperVoiceOut


def test_piper_reads_a_reply_aloud_without_citation_marks():
    audio = PiperVoiceOut().speak("Start your return within 30 days of delivery. [1]")
    with wave.open(io.BytesIO(audio)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert 1.0 < seconds < 8.0
