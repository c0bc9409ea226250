"""The real server on a free local port, talked to over HTTP; and its page in headless Chromium."""

import http.client
import json
import shutil
import socket
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from asr.checkpoint import model_payload, save_checkpoint
from asr.models import ConvBiLSTM, ConvBiLSTMDims
from asr.text import CharTokenizer
from tests.asr_server import health, running_server, wait_for
from tests.conftest import cli


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    torch.manual_seed(0)
    dims = ConvBiLSTMDims(n_mels=32, conv_channels=[8, 8], rnn_hidden=32, rnn_layers=1)
    save_checkpoint(folder / "model.pt", model_payload(ConvBiLSTM(dims), CharTokenizer()))
    options = [f"model={folder / 'model.pt'}", "max_upload_mb=2", "max_seconds=20", "max_uploads=8"]
    with running_server(*options) as url:
        yield {"url": url, "checkpoint": folder / "model.pt", "folder": folder}


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
    result = cli("asr-transcribe", f"model={checkpoint}", str(audio))
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\t", 1)[1].strip()


def test_health_and_a_good_request(server, tiny_corpus):
    assert health(server["url"]) == {
        "status": "ok", "model": "model.pt", "sample_rate": 16000, "streaming": False, "active_streams": 0,
        "receiving_uploads": 0,
    }  # fmt: skip
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


LAYOUT = """
const box = (e) => { const r = e.getBoundingClientRect();
  return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height}; };
const boxes = {};
for (const id of ["drop", "record", "hint", "status"]) {
  const element = document.getElementById(id);
  if (element) boxes[id] = box(element);
}
boxes.title = box(document.querySelector("h1"));
return {boxes, drop_pieces: document.getElementById("drop").getClientRects().length};
"""


@pytest.mark.skipif(
    shutil.which("chromedriver") is None, reason="needs Debian's chromium-driver (.ci/run installs it)"
)
def test_the_page_lays_out_and_shows_a_transcript_in_headless_chromium(server, tiny_corpus, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    try:
        driver.set_window_size(1200, 800)
        driver.get(server["url"])
        driver.save_screenshot(str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").stat().st_size > 0
        boxes = driver.execute_script(LAYOUT)
        assert boxes["drop_pieces"] == 1, "the drop zone is one box"
        named = [(name, box) for name, box in boxes["boxes"].items() if box["height"] > 0]
        for i, (first, a) in enumerate(named):
            for second, b in named[i + 1 :]:
                apart = a["bottom"] <= b["top"] or b["bottom"] <= a["top"]
                apart |= a["right"] <= b["left"] or b["right"] <= a["left"]
                assert apart, f"{first} {a} overlaps {second} {b}"
        source = sorted(tiny_corpus.glob("test/*/*/*.flac"))[0]
        driver.find_element(By.ID, "file").send_keys(str(source))
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "status").text.endswith("s of audio"))
        shown = driver.find_element(By.ID, "transcript").text.strip()
        assert shown and shown == (transcribe_cli(server["checkpoint"], source) or "(no speech recognised)")
    finally:
        driver.quit()


def test_a_declared_oversized_upload_is_refused_before_its_body(server):
    host, port = server["url"].removeprefix("http://").split(":")
    head = (
        "POST /transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        "Content-Length: 300000000\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode() + b"--b\r\n" + b"x" * 1000)
        reply = http.client.HTTPResponse(sock)
        reply.begin()  # a server that waited for the 300 MB would time out here
        assert reply.status == 413 and b"larger than 2 MB" in reply.read()


def test_a_client_that_asks_first_is_told_413_and_sends_nothing(server):
    """``Expect: 100-continue`` (curl sends it for bodies over 1 MB): the server answers 413 instead
    of "100 Continue", so the 2.1 MB are never sent. (A client that sends a refused body unasked may
    see its connection closed under it: the server does not read what it has refused.)"""
    host, port = server["url"].removeprefix("http://").split(":")
    head = (
        "POST /transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        "Content-Length: 2100000\r\nExpect: 100-continue\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())
        reply = http.client.HTTPResponse(sock)
        reply.begin()
        assert reply.status == 413 and "larger than 2 MB" in json.loads(reply.read())["detail"]


def test_a_chunked_upload_is_cut_off_past_the_limit(server):
    host, port = server["url"].removeprefix("http://").split(":")
    sent = [0]

    def body():
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
        chunk = b"\0" * 65536
        while sent[0] < 300_000_000:
            sent[0] += len(chunk)
            yield chunk

    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    status = None
    try:
        connection.request("POST", "/transcribe", body=body(), encode_chunked=True,
                           headers={"Content-Type": "multipart/form-data; boundary=b"})  # fmt: skip
        status = connection.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server stopped reading and closed: what is asked of it
    finally:
        connection.close()
    assert status in (None, 413)
    assert sent[0] < 50_000_000, f"the server read {sent[0] / 1e6:.0f} MB of a 2 MB limit"


def test_uploads_being_received_at_once_are_bounded(server, tiny_corpus):
    """Eight slow uploads (max_uploads=8) hold the slots: one more is refused with 503; when they
    go away, uploads are taken again."""
    host, port = server["url"].removeprefix("http://").split(":")
    head = (
        "POST /transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    slow = [socket.create_connection((host, int(port)), timeout=30) for _ in range(8)]
    try:
        for sock in slow:
            sock.sendall(head.encode() + b"5\r\n--b\r\n\r\n")  # one chunk: "--b\r\n"
        wait_for(lambda: health(server["url"])["receiving_uploads"] == 8, "eight uploads in progress")
        source = sorted(tiny_corpus.glob("test/*/*/*.flac"))[0]
        status, body = post(server["url"], source.name, source.read_bytes())
        assert status == 503 and "try again" in body["detail"]
    finally:
        for sock in slow:
            sock.close()
    wait_for(lambda: health(server["url"])["receiving_uploads"] == 0, "the slow uploads to be dropped")
    assert post(server["url"], source.name, source.read_bytes())[0] == 200
