"""``asr-serve``: a transcription service over HTTP (FastAPI + uvicorn), with a page for people.

    asr-serve model=runs/demo/model.onnx [port=8000] [host=127.0.0.1] [max_upload_mb=25] [max_seconds=600]

- ``GET /``: a page to drop an audio file, or record from the microphone, and read the transcript;
- ``GET /health``: ``{"status": "ok", "model", "sample_rate", "streaming", "active_streams",
  "receiving_uploads"}``;
- ``POST /transcribe`` (multipart field ``file``): ``{"text", "duration", "words": [{"word",
  "start", "end"}]}``. An upload is refused with 413 as soon as it is known to be too large (its
  declared length at once, else while it is being received), more than ``max_uploads`` being
  received at once with 503, audio that is too long with 413, anything that is not audio with
  415, each with ``{"detail": "..."}`` saying why. At most ``max_concurrent`` requests compute at
  once.
- ``WebSocket /stream`` (a streaming model): see ``asr.serve_stream``.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from omegaconf import MISSING
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from asr.audio import AudioError, audio_info
from asr.cli import run_tool
from asr.errors import UserError
from asr.recognizer import Recognizer
from asr.serve_stream import StreamLimits, serve_stream

PAGE = Path(__file__).with_name("serve.html")
FORM_OVERHEAD = 10_000
"""Bytes of multipart framing allowed on top of ``max_upload_mb``."""


@dataclass
class ServeConfig:
    model: str = MISSING
    """A checkpoint (``.pt``), or an ``asr-export`` artifact (``.onnx``, ``.ts``)."""
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_mb: float = 25.0
    """Larger uploads are refused with 413, without reading them past the limit."""
    max_uploads: int = 8
    """Uploads being received at once; more are refused with 503."""
    max_seconds: float = 600.0
    """Longer audio is refused with 413."""
    max_concurrent: int = 2
    """Requests (and stream chunks) that compute at once; more wait."""
    max_streams: int = 4
    """Live streams at once (``/stream``); more are closed with 1013 (try again later)."""
    max_stream_seconds: float = 300.0
    """Audio one stream may send; past it the stream gets its final result and is closed (1008)."""
    max_frame_bytes: int = 65536
    """Largest message of a stream (16-bit PCM: 2 bytes a sample); larger closes it (1009)."""
    threads: int | None = None
    """CPU threads for torch and onnxruntime; None: their defaults."""


class TooLarge(Exception):
    pass


def refuse(status: int, detail: str) -> HTTPException:
    """An error answered before the request body has been read: ``Connection: close`` makes
    uvicorn close the connection after it rather than read (and discard) the rest of the body."""
    return HTTPException(status, detail, headers={"Connection": "close"})


def create_app(cfg: ServeConfig) -> FastAPI:
    recognizer = Recognizer.load(cfg.model, "cpu", cfg.threads)
    compute = threading.Semaphore(cfg.max_concurrent)
    max_bytes = int(cfg.max_upload_mb * 1e6)
    receiving = [0]  # uploads being received now (the event loop's thread alone changes it)
    limits = StreamLimits(cfg.max_streams, cfg.max_stream_seconds, cfg.max_frame_bytes)
    try:
        streaming = recognizer.stream() is not None
    except UserError:
        streaming = False
    app = FastAPI(title="asr", description="CTC speech recognition")

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/health")
    def health() -> dict:
        return {
            "status": "ok", "model": Path(cfg.model).name, "sample_rate": recognizer.sample_rate,
            "streaming": streaming, "active_streams": limits.active, "receiving_uploads": receiving[0],
        }  # fmt: skip

    async def received_form(request: Request):
        """The multipart form, read with the size limit enforced as the bytes arrive."""

        async def limited():
            count = 0
            async for chunk in request.stream():
                count += len(chunk)
                if count > max_bytes + FORM_OVERHEAD:
                    raise TooLarge
                yield chunk

        parser = MultiPartParser(
            request.headers, limited(), max_files=1, max_fields=10, max_part_size=max_bytes
        )
        try:
            return await parser.parse()
        except TooLarge:
            raise refuse(413, f"upload larger than {cfg.max_upload_mb:g} MB") from None
        except MultiPartException as error:
            raise refuse(400, f"not a multipart form: {error.message}") from None
        except ClientDisconnect:
            raise refuse(400, "the client went away during the upload") from None

    def recognise(path: Path, name: str) -> dict:
        try:
            duration, _ = audio_info(path)
            if duration > cfg.max_seconds:
                raise HTTPException(413, f"audio longer than {cfg.max_seconds:g} s ({duration:.0f} s)")
            with compute, torch.inference_mode():
                [result] = recognizer.transcribe([path], timestamps=True)
        except AudioError as error:
            raise HTTPException(415, f"{name}: {error.problem}") from None
        return {"text": result.text, "duration": round(duration, 3), "words": result.to_dict()["words"]}

    @app.post("/transcribe")
    async def transcribe(request: Request) -> dict:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD:
            raise refuse(413, f"upload larger than {cfg.max_upload_mb:g} MB")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise refuse(415, "send the audio as multipart/form-data, field 'file'")
        if receiving[0] >= cfg.max_uploads:
            raise refuse(503, f"{cfg.max_uploads} uploads are being received; try again shortly")
        receiving[0] += 1
        try:
            form = await received_form(request)
        finally:
            receiving[0] -= 1
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, "the form has no file field 'file'")
        with tempfile.TemporaryDirectory(prefix="asr-serve-") as folder:
            path = Path(folder) / "upload"
            with path.open("wb") as out:
                while chunk := await upload.read(1 << 20):
                    out.write(chunk)
            if path.stat().st_size > max_bytes:
                raise HTTPException(413, f"upload larger than {cfg.max_upload_mb:g} MB")
            return await run_in_threadpool(recognise, path, upload.filename or "upload")

    @app.websocket("/stream")
    async def stream(websocket: WebSocket) -> None:
        await serve_stream(websocket, recognizer, limits, compute)

    return app


def serve(cfg: ServeConfig) -> None:
    import uvicorn

    app = create_app(cfg)
    print(f"serving {cfg.model} on http://{cfg.host}:{cfg.port}/", flush=True)
    # Messages a little over max_frame_bytes reach /stream, which closes with a reason; the protocol
    # itself cuts far larger ones.
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", ws_max_size=4 * cfg.max_frame_bytes)


def main(argv: list[str] | None = None) -> None:
    run_tool("asr-serve", ServeConfig, serve, argv)


if __name__ == "__main__":
    main()
