"""The ``custom`` CTC backend on the CPU: ``csrc/ctc_cpu.c`` through ctypes.

The C file needs no torch headers, so it compiles in about a second. It is built on first use
with the system C compiler (``$CC``, else ``gcc`` or ``cc``) for this machine's CPU, and cached in
``$ASR_CACHE_DIR`` (default ``~/.cache/asr``) under a name that hashes the source, the flags and the
CPU, so a changed file or another machine gets its own build.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path

import torch

from asr.errors import UserError
from asr.fileio import atomic_path

SOURCE = Path(__file__).with_name("csrc") / "ctc_cpu.c"
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fopenmp", "-shared", "-fPIC"]


def _cpu_signature() -> str:
    try:
        flags = next(
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
        )
    except (OSError, StopIteration):
        flags = ""
    return platform.machine() + flags


@functools.cache
def _library(defines: tuple[str, ...] = ()) -> ctypes.CDLL:
    """The compiled kernel; ``defines`` (``-DNAME=VALUE``) are for tests."""
    compiler = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise UserError(
            "ctc.backend=custom needs a C compiler (apt-get install gcc), or use ctc.backend=native"
        )
    flags = [*FLAGS, *defines]
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(flags).encode() + _cpu_signature().encode())
    cache = Path(os.environ.get("ASR_CACHE_DIR", Path.home() / ".cache" / "asr"))
    library = cache / f"ctc_cpu-{digest.hexdigest()[:16]}.so"
    if not library.is_file():
        with atomic_path(library) as temp:
            build = subprocess.run(
                [compiler, *flags, str(SOURCE), "-o", str(temp), "-lm"], capture_output=True, text=True
            )
            if build.returncode != 0:
                raise UserError(
                    f"building {SOURCE.name} with {compiler} failed: {build.stderr.strip().splitlines()[-1]}"
                )
    lib = ctypes.CDLL(str(library))
    pointer, i32 = ctypes.c_void_p, ctypes.c_int
    lib.ctc_loss_cpu.argtypes = [pointer] * 4 + [i32] * 6 + [pointer, pointer]
    lib.ctc_loss_cpu.restype = i32
    return lib


def ctc_loss_cpu(
    log_probs: torch.Tensor, targets: torch.Tensor, input_lengths: torch.Tensor, target_lengths: torch.Tensor,
    blank: int, want_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """Per-utterance losses ``(batch,)`` and, if ``want_grad``, the gradient ``(time, batch, vocab)``.

    Inputs must be validated: float32 contiguous ``log_probs``, int64 padded ``targets``,
    int64 lengths on the CPU.
    """
    T, B, V = log_probs.shape
    losses = torch.empty(B, dtype=torch.float32)
    grad = torch.empty_like(log_probs) if want_grad else None
    status = _library().ctc_loss_cpu(
        log_probs.data_ptr(), targets.data_ptr(), input_lengths.data_ptr(), target_lengths.data_ptr(),
        T, B, V, targets.shape[1], blank, torch.get_num_threads(),
        losses.data_ptr(), grad.data_ptr() if grad is not None else None,
    )  # fmt: skip
    if status != 0:
        raise MemoryError("ctc_loss_cpu: out of memory")
    return losses, grad
