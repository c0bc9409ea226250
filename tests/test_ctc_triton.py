"""The Triton GPU kernels (tests/ctc_triton_checks.py), in a child pytest: compiled for real on a
CUDA GPU, else interpreted on the CPU. The interpreter needs TRITON_INTERPRET=1 before triton is
first imported, which a shared test process cannot promise, and the variable must not reach
other tests."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

CHECKS = Path(__file__).with_name("ctc_triton_checks.py")


def test_triton_kernels():
    pytest.importorskip("triton")
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["TRITON_INTERPRET"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CHECKS)],
        env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]
