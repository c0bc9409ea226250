"""Training: the config schema (``config``), the run (``loop.run``) built from ``builders``, stepped
and evaluated by ``trainer``, kept on disk by ``checkpointer``; ``distributed`` and ``metrics``."""
