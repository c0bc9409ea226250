"""The real server on a free local port, talked to over HTTP; and its page in headless Chromium."""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from asr.models import DeepSpeech2, ModelDims
from asr.text import CharTokenizer
from asr.train.checkpoint import model_payload, save_checkpoint

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_corpus):
    folder = tmp_path_factory.mktemp("serve")
    torch.manual_seed(0)
    dims = ModelDims(n_mels=32, conv_channels=[8, 8], rnn_hidden=32, rnn_layers=1)
    save_checkpoint(folder / "model.pt", model_payload(DeepSpeech2(dims), CharTokenizer()))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        BIN / "asr-serve",
        f"artifact={folder / 'model.pt'}",
        f"port={port}",
        "max_upload_mb=2",
        "max_seconds=20",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1)
            break
        except OSError:
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.2)
    yield {"url": url, "checkpoint": folder / "model.pt", "folder": folder}
    process.terminate()
    process.wait(timeout=10)


def post(url: str, filename: str, data: bytes) -> tuple[int, dict]:
    boundary = uuid.uuid4().hex
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n\r\n'
    body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{url}/transcribe", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def transcribe_cli(checkpoint: Path, audio: Path) -> str:
    result = subprocess.run(
        [BIN / "asr-transcribe", str(checkpoint), str(audio)], capture_output=True, text=True
    )
    return result.stdout.split("\t", 1)[1].strip()


def test_health_and_a_good_request(server, tiny_corpus):
    health = json.loads(urllib.request.urlopen(f"{server['url']}/health").read())
    assert health == {"status": "ok", "model": "model.pt", "sample_rate": 16000}
    source = sorted(tiny_corpus.glob("test/*/*/*.flac"))[0]
    status, body = post(server["url"], source.name, source.read_bytes())
    assert status == 200 and body["text"] == transcribe_cli(server["checkpoint"], source)
    assert body["duration"] == pytest.approx(soundfile.info(source).duration, abs=1e-3)
    assert [w["word"] for w in body["words"]] == body["text"].split()


def test_bad_requests_get_4xx_with_a_reason_and_the_server_lives_on(server, tmp_path):
    status, body = post(server["url"], "notes.txt", b"this is not audio at all")
    assert status == 415 and "notes.txt: cannot read audio" in body["detail"]
    status, body = post(server["url"], "empty.wav", b"")
    assert status == 415
    status, body = post(server["url"], "big.wav", b"\0" * 2_100_000)
    assert status == 413 and "larger than 2 MB" in body["detail"]
    long = tmp_path / "long.flac"
    soundfile.write(long, np.zeros(16000 * 25, np.float32), 16000)
    status, body = post(server["url"], "long.flac", long.read_bytes())
    assert status == 413 and "longer than 20 s" in body["detail"]
    assert json.loads(urllib.request.urlopen(f"{server['url']}/health").read())["status"] == "ok"


def test_concurrent_requests(server, tiny_corpus):
    files = sorted(tiny_corpus.glob("*/*/*/*.flac"))[:8]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda path: post(server["url"], path.name, path.read_bytes()), files))
    assert all(status == 200 for status, _ in results)
    assert [body["text"] for _, body in results] == [
        transcribe_cli(server["checkpoint"], path) for path in files
    ]


@pytest.mark.skipif(
    shutil.which("chromedriver") is None, reason="needs Debian's chromium-driver (.ci/run installs it)"
)
def test_the_page_shows_a_transcript_in_headless_chromium(server, tiny_corpus):
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    try:
        driver.get(server["url"])
        source = sorted(tiny_corpus.glob("test/*/*/*.flac"))[0]
        driver.find_element(By.ID, "file").send_keys(str(source))
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "status").text.endswith("s of audio"))
        shown = driver.find_element(By.ID, "transcript").text.strip()
        assert shown and shown == (transcribe_cli(server["checkpoint"], source) or "(no speech recognised)")
    finally:
        driver.quit()
