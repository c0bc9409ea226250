"""``asr-serve``'s live endpoint, ``WebSocket /stream``, for a streaming model.

The client sends a JSON text message ``{"sample_rate": 16000}`` first, then binary messages of
mono 16-bit little-endian PCM at that rate (any size up to ``max_frame_bytes``), and the text
message ``{"type": "end"}`` when it stops. The server answers ``{"type": "partial", "text",
"words"}`` whenever the transcript grows (it only grows) and ``{"type": "final", "text", "words",
"duration"}`` at the end, then closes with 1000. Anything else closes the stream with a code and a
reason: 1013 when ``max_streams`` are already open, 1007 for a bad first message or an odd number
of PCM bytes, 1009 for a message over ``max_frame_bytes``, 1008 (after the final result) past
``max_stream_seconds`` of audio, 1003 for a model that does not stream. A client that vanishes
frees its slot at once.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass

import numpy as np
import soxr
from fastapi import WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from asr.errors import UserError
from asr.recognizer import Recognizer


@dataclass
class StreamLimits:
    max_streams: int
    max_seconds: float
    max_frame_bytes: int
    active: int = 0
    """Streams open now (changed on the event loop's thread only)."""


class Closed(Exception):
    """Close the stream with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def pcm_samples(data: bytes, limits: StreamLimits) -> np.ndarray:
    if len(data) > limits.max_frame_bytes:
        raise Closed(1009, f"message of {len(data)} bytes; at most {limits.max_frame_bytes}")
    if len(data) % 2:
        raise Closed(1007, "audio messages are 16-bit PCM: an even number of bytes")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def first_message(text: str | None) -> int:
    """The client's sample rate, from its first message."""
    try:
        rate = json.loads(text or "")["sample_rate"]
    except (ValueError, KeyError, TypeError):
        raise Closed(1007, 'the first message must be JSON: {"sample_rate": <Hz>}') from None
    if not isinstance(rate, int) or not 8000 <= rate <= 192000:
        raise Closed(1007, f"sample_rate {rate!r}: expected an integer from 8000 to 192000 Hz")
    return rate


def result(stream, kind: str) -> dict:
    message = {"type": kind, "text": stream.text, "words": [asdict(w) for w in stream.words()]}
    if kind == "final":
        message["duration"] = round(stream.seconds, 3)
    return message


async def serve_stream(
    websocket: WebSocket, recognizer: Recognizer, limits: StreamLimits, compute: threading.Semaphore
) -> None:
    if limits.active >= limits.max_streams:  # counted before any await: in order of arrival
        await websocket.accept()
        await websocket.close(1013, f"{limits.max_streams} streams are open; try again later")
        return
    limits.active += 1
    try:
        await websocket.accept()
        await _converse(websocket, recognizer, limits, compute)
    except Closed as close:
        await websocket.close(close.code, close.reason)
    except WebSocketDisconnect:
        pass  # the client went away: nothing to answer
    finally:
        limits.active -= 1


async def _converse(websocket: WebSocket, recognizer: Recognizer, limits, compute) -> None:
    try:
        stream = recognizer.stream()
    except UserError as error:
        raise Closed(1003, str(error)) from None
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return
    rate = first_message(message.get("text"))
    resampler = (
        None if rate == recognizer.sample_rate else soxr.ResampleStream(rate, recognizer.sample_rate, 1)
    )

    def accept(samples: np.ndarray, last: bool = False) -> tuple[str, bool]:
        """Feed the model; True when the stream has reached its length limit."""
        if resampler is not None:
            samples = resampler.resample_chunk(samples, last=last)
        room = int((limits.max_seconds - stream.seconds) * recognizer.sample_rate)
        with compute:
            text = stream.accept(samples[: max(room, 0)])
            if last or len(samples) > room:
                stream.finish()
        return text, len(samples) > room

    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            before = stream.text
            _, over = await run_in_threadpool(accept, pcm_samples(message["bytes"], limits))
            if over:
                await websocket.send_json(result(stream, "final"))
                raise Closed(1008, f"stream longer than {limits.max_seconds:g} s of audio")
            if stream.text != before:
                await websocket.send_json(result(stream, "partial"))
            continue
        try:
            ended = json.loads(message.get("text") or "") == {"type": "end"}
        except ValueError:
            ended = False
        if not ended:
            raise Closed(1003, 'text messages after the first: only {"type": "end"}')
        await run_in_threadpool(accept, np.zeros(0, np.float32), True)
        await websocket.send_json(result(stream, "final"))
        await websocket.close(1000)
        return
