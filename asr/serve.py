"""``asr-serve``: a transcription service over HTTP (FastAPI + uvicorn), with a page for people.

    asr-serve artifact=runs/demo/model.onnx [port=8000] [host=127.0.0.1] [max_upload_mb=25] [max_seconds=600]

- ``GET /``: a page to pick or drop an audio file and read its transcript;
- ``GET /health``: ``{"status": "ok", "model": ..., "sample_rate": ...}``;
- ``POST /transcribe`` (multipart field ``file``): ``{"text", "duration", "words": [{"word",
  "start", "end"}]}``. Too large an upload or too long audio is refused with 413, anything that
  is not audio with 415, each with ``{"detail": "..."}`` saying why. Requests run concurrently
  on a thread pool; at most ``max_concurrent`` of them compute at once.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from fastapi import FastAPI, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse
from omegaconf import MISSING

from asr.audio import AudioError, audio_info
from asr.errors import exit_on_user_error
from asr.inference import load_recognizer
from asr.transcribe import transcribe_files

PAGE = Path(__file__).with_name("serve.html")


@dataclass
class ServeConfig:
    artifact: str = MISSING
    """A checkpoint or an ``asr-export`` artifact."""
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_mb: float = 25.0
    max_seconds: float = 600.0
    max_concurrent: int = 2
    threads: int | None = None


def create_app(cfg: ServeConfig) -> FastAPI:
    device = torch.device("cpu")
    model, tokenizer = load_recognizer(cfg.artifact, device, cfg.threads)
    limit = threading.Semaphore(cfg.max_concurrent)
    max_bytes = int(cfg.max_upload_mb * 1e6)
    app = FastAPI(title="asr", description="CTC speech recognition")

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": Path(cfg.artifact).name, "sample_rate": model.dims.sample_rate}

    @app.post("/transcribe")
    def transcribe(request: Request, file: UploadFile) -> dict:
        declared = request.headers.get("content-length")
        if declared is not None and int(declared) > max_bytes + 10_000:
            raise HTTPException(413, f"upload larger than {cfg.max_upload_mb:g} MB")
        data = file.file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise HTTPException(413, f"upload larger than {cfg.max_upload_mb:g} MB")
        with tempfile.TemporaryDirectory(prefix="asr-serve-") as folder:
            path = Path(folder) / "upload"
            path.write_bytes(data)
            try:
                duration, _ = audio_info(path)
                if duration > cfg.max_seconds:
                    raise HTTPException(413, f"audio longer than {cfg.max_seconds:g} s ({duration:.0f} s)")
                with limit, torch.inference_mode():
                    [result] = transcribe_files(model, tokenizer, [str(path)], device, timestamps=True)
            except AudioError as error:
                name = file.filename or "upload"
                raise HTTPException(415, f"{name}: {error.problem}") from None
        return {"text": result["text"], "duration": round(duration, 3), "words": result["words"]}

    return app


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from asr.evaluate import parse_cli

    cfg = parse_cli(ServeConfig, sys.argv[1:] if argv is None else argv)
    app = create_app(cfg)
    print(f"serving {cfg.artifact} on http://{cfg.host}:{cfg.port}/", flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")


if __name__ == "__main__":
    main()
