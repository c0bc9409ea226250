"""Acoustic models."""

from asr.models.deepspeech2 import DeepSpeech2, ModelDims

__all__ = ["DeepSpeech2", "ModelDims"]
