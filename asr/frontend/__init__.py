"""Feature extraction: pure functions in ``functional``, buffer-holding modules in ``modules``."""

from asr.frontend.modules import LogMelFrontend

__all__ = ["LogMelFrontend"]
