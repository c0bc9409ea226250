"""The Triton GPU kernels (tests/ctc_triton_checks.py), in a child pytest: compiled for real on a
CUDA GPU, else interpreted on the CPU. The interpreter needs TRITON_INTERPRET=1 before triton is
first imported, which a shared test process cannot promise, and the variable must not reach
other tests."""

import os
import subprocess
import sys
import types
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


def test_kernels_read_only_constexpr_globals():
    # Compiled Triton (not the interpreter) refuses a kernel that reads a module-level name unless
    # it is a tl.constexpr, another jit function or a module: the first GPU run failed so on NEG.
    # Imported here without the interpreter, the kernels are the objects a GPU would compile.
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("under the interpreter triton.jit makes other objects")
    triton = pytest.importorskip("triton")
    from asr.ctc import gpu

    kernels = {name: value for name, value in vars(gpu).items() if isinstance(value, triton.JITFunction)}
    assert {"_alpha_kernel", "_posterior_kernel", "_shift_out_peak"} <= kernels.keys()
    for name, kernel in kernels.items():
        for read in kernel.fn.__code__.co_names:
            value = vars(gpu).get(read)
            allowed = (triton.language.constexpr, triton.JITFunction, types.ModuleType)
            assert value is None or isinstance(value, allowed), f"{name} reads {read}={value!r}"
