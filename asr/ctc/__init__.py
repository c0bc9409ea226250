"""CTC: loss backends behind one registry, the float64 reference, and decoding."""

from asr.ctc.decoding import greedy_decode
from asr.ctc.losses import available_backends, get_backend, register_backend

__all__ = ["available_backends", "get_backend", "greedy_decode", "register_backend"]
