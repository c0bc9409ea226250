"""Training: configuration schema (``config``), the loop (``loop.run``), checkpoints, metrics."""
