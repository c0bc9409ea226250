"""CTC speech recognition: ``from asr import Recognizer`` (see ``asr.recognizer``)."""


def __getattr__(name: str):
    if name == "Recognizer":  # on first use: ``import asr.<anything>`` stays light
        from asr.recognizer import Recognizer

        return Recognizer
    raise AttributeError(f"module 'asr' has no attribute {name!r}")
