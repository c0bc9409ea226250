"""``asr-serve``'s WebSocket ``/stream``, on a real server with a streaming model, driven by a plain
Python WebSocket client: a good stream, other sample rates, bad and oversized messages, too many
streams, too long a stream, and a client that vanishes."""

import json
import shutil
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile
import websocket

from asr.checkpoint import model_payload, save_checkpoint
from tests.asr_server import health, running_server, wait_for
from tests.conftest import cli
from tests.test_streaming import MODEL, TOKENIZER


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream")
    save_checkpoint(folder / "stream.pt", model_payload(MODEL, TOKENIZER))
    options = [
        f"model={folder / 'stream.pt'}",
        "max_streams=2",
        "max_stream_seconds=2",
        "max_frame_bytes=8000",
    ]
    with running_server(*options) as url:
        yield {"url": url, "ws": url.replace("http://", "ws://") + "/stream", "model": folder / "stream.pt"}


def pcm(seconds: float, rate: int = 16000, seed: int = 0) -> bytes:
    return (np.random.default_rng(seed).normal(0, 0.1, int(seconds * rate)) * 32767).astype("<i2").tobytes()


def talk(url: str, first, frames: list[bytes], end: bool = True) -> tuple[list[dict], int, str]:
    """Send ``first``, the binary ``frames`` and the end message; every JSON message received,
    then the close code and reason."""
    ws = websocket.create_connection(url, timeout=60)
    try:
        for message in [first] if isinstance(first, str) else []:
            ws.send(message)
        for frame in frames:
            ws.send_binary(frame)
        if end:
            ws.send(json.dumps({"type": "end"}))
        return listen(ws)
    finally:
        ws.close()


def listen(ws) -> tuple[list[dict], int, str]:
    messages = []
    while True:
        try:
            opcode, data = ws.recv_data(control_frame=True)
        except websocket.WebSocketConnectionClosedException:
            return messages, None, ""
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return messages, int.from_bytes(data[:2], "big"), data[2:].decode()
        if opcode == websocket.ABNF.OPCODE_TEXT:
            messages.append(json.loads(data))


def test_a_stream_gives_growing_partials_then_the_whole_utterance_transcript(server, tmp_path):
    audio = pcm(1.5)
    wav = tmp_path / "a.wav"
    soundfile.write(wav, np.frombuffer(audio, "<i2"), 16000, subtype="PCM_16")
    expected = (
        cli("asr-transcribe", f"model={server['model']}", str(wav)).stdout.split("\t", 1)[1].rstrip("\n")
    )
    frames = [audio[i : i + 3200] for i in range(0, len(audio), 3200)]
    messages, code, _ = talk(server["ws"], json.dumps({"sample_rate": 16000}), frames)
    assert code == 1000 and [m["type"] for m in messages][-1] == "final"
    texts = [m["text"] for m in messages]
    assert all(later.startswith(earlier) for earlier, later in zip(texts, texts[1:], strict=False))
    final = messages[-1]
    assert final["text"] == expected and final["duration"] == pytest.approx(1.5, abs=1e-3)
    assert [w["word"] for w in final["words"]] == expected.split()


def test_another_sample_rate_is_resampled(server):
    audio = pcm(1.0, rate=8000)
    frames = [audio[i : i + 4000] for i in range(0, len(audio), 4000)]
    messages, code, _ = talk(server["ws"], json.dumps({"sample_rate": 8000}), frames)
    assert code == 1000 and messages[-1]["type"] == "final"
    assert messages[-1]["duration"] == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(
    ("first", "frames", "code", "reason"),
    [
        ("hello", [], 1007, "the first message must be JSON"),
        (json.dumps({"sample_rate": 12.5}), [], 1007, "expected an integer"),
        (json.dumps({"sample_rate": 16000}), [b"\x01\x02\x03"], 1007, "an even number of bytes"),
        (json.dumps({"sample_rate": 16000}), [b"\0" * 9000], 1009, "at most 8000"),
    ],
)
def test_bad_messages_close_the_stream_with_a_reason(server, first, frames, code, reason):
    messages, got, text = talk(server["ws"], first, frames, end=False)
    assert (got, messages) == (code, []) and reason in text
    assert health(server["url"])["status"] == "ok"


def test_too_many_streams_and_too_long_a_stream(server):
    hello = json.dumps({"sample_rate": 16000})
    open_streams = [websocket.create_connection(server["ws"], timeout=60) for _ in range(2)]
    try:
        for ws in open_streams:
            ws.send(hello)
        messages, code, reason = talk(server["ws"], hello, [])
        assert code == 1013 and "try again later" in reason and messages == []
    finally:
        for ws in open_streams:
            ws.close()
    wait_for(lambda: health(server["url"])["active_streams"] == 0, "the streams to close")
    audio = pcm(3.0)  # max_stream_seconds=2
    messages, code, reason = talk(
        server["ws"], hello, [audio[i : i + 8000] for i in range(0, len(audio), 8000)]
    )
    assert code == 1008 and "longer than 2 s" in reason
    assert messages[-1]["type"] == "final" and messages[-1]["duration"] == pytest.approx(2.0, abs=1e-3)


def test_a_client_that_vanishes_mid_utterance_frees_its_slot(server):
    hello = json.dumps({"sample_rate": 16000})
    vanishing = [websocket.create_connection(server["ws"], timeout=60) for _ in range(2)]  # max_streams
    for ws in vanishing:
        ws.send(hello)
        ws.send_binary(pcm(0.2))
    wait_for(lambda: health(server["url"])["active_streams"] == 2, "both streams to be open")
    for ws in vanishing:
        ws.shutdown()  # the socket closes without a close frame
    wait_for(lambda: health(server["url"])["active_streams"] == 0, "the vanished streams to be freed")
    messages, code, _ = talk(server["ws"], hello, [pcm(0.2)])
    assert code == 1000 and messages[-1]["type"] == "final"


FIXTURES = Path(__file__).with_name("fixtures")


def closest_cer(said: str, shown: str) -> float:
    """The character error rate of ``said`` against the closest run of as many words in ``shown``
    (the fake microphone plays the recording in a loop)."""
    words, n = shown.split(), len(said.split())
    if len(words) < n:
        return 1.0
    return min(jiwer.cer(said, " ".join(words[i : i + n])) for i in range(len(words) - n + 1))


@pytest.mark.skipif(
    shutil.which("chromedriver") is None, reason="needs Debian's chromium-driver (.ci/run installs it)"
)
def test_the_page_records_from_a_fake_microphone_and_shows_the_transcript(tmp_path):
    """Headless Chromium with a fake microphone playing a recording (in a loop): Record, the
    partial transcripts arrive over /stream, Stop; the page shows what was said. The model is a
    small streaming model trained on the built-in corpus (scripts/make_stream_fixture.py); the
    recording is of a test speaker it never heard, and says ``stream_speech.txt``: streamed from
    Python it comes out exactly; through the browser's capture and resampling, within 15% CER."""
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    said = (FIXTURES / "stream_speech.txt").read_text().strip()
    options = webdriver.ChromeOptions()
    flags = [
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required",
        f"--use-file-for-fake-audio-capture={FIXTURES / 'stream_speech.wav'}",
    ]  # fmt: skip
    for flag in flags:
        options.add_argument(flag)
    with running_server(f"model={FIXTURES / 'stream_model.pt'}") as url:
        driver = webdriver.Chrome(
            options=options, service=webdriver.ChromeService(shutil.which("chromedriver"))
        )
        try:
            driver.set_window_size(1200, 800)
            driver.get(url)
            driver.find_element(By.ID, "record").click()
            transcript = driver.find_element(By.ID, "transcript")
            try:
                WebDriverWait(driver, 120).until(lambda d: closest_cer(said, transcript.text) <= 0.15)
            except TimeoutException:
                status = driver.find_element(By.ID, "status").text
                pytest.fail(f"the page shows {transcript.text!r} (status {status!r}), not {said!r}")
            driver.save_screenshot(str(tmp_path / "recording.png"))
            driver.find_element(By.ID, "record").click()  # stop: the final result
            status = driver.find_element(By.ID, "status")
            WebDriverWait(driver, 60).until(lambda d: status.text.endswith("s of audio"))
            assert closest_cer(said, transcript.text) <= 0.15
            assert driver.find_element(By.ID, "record").text == "Record"
        finally:
            driver.quit()
