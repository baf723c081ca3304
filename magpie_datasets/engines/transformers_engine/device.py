"""Where the transformers engine runs: dtype resolution, CPU capability checks, free memory, and
the one-thread-per-forked-worker rule."""

from __future__ import annotations

import os
from typing import Any, Mapping

import torch

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
_LOADED_IN = os.getpid()


def _one_thread_if_forked() -> None:
    """A forked child (a `Dataset.map(num_proc=N)` worker) inherits the parent's OpenMP thread
    pool state but not its threads, and its first parallel op hangs. One thread per worker, as
    torch's DataLoader workers do, runs OpenMP regions inline; the workers share the cores.
    Checked where this engine starts torch work, so other forks (vLLM's engine core) keep theirs."""
    global _LOADED_IN
    if os.getpid() != _LOADED_IN:
        torch.set_num_threads(1)
        _LOADED_IN = os.getpid()



def _cpu_capabilities() -> Mapping[str, Any]:
    try:
        return torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):  # torch without cpuinfo: assume no bf16 units
        return {}


def _cpu_native_dtype(capabilities: Mapping[str, Any]) -> torch.dtype:
    """bf16 where the CPU computes it natively (AVX512-BF16 or AMX), else fp32: elsewhere bf16
    matmuls are emulated and slower than fp32."""
    native = capabilities.get("avx512_bf16") or capabilities.get("amx_bf16")
    return torch.bfloat16 if native else torch.float32


def _resolve_dtype(dtype, device: torch.device) -> torch.dtype:
    if dtype in (None, "auto", "native") and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype in (None, "auto"):
        # fp32 keeps a row's text independent of the rows batched with it; in bf16 the rounding of
        # a padded batch differs from the row's own and sampled texts diverge within a few tokens
        return torch.float32
    if dtype == "native":  # speed first: bf16 where the CPU computes it, rows then depend on batching
        return _cpu_native_dtype(_cpu_capabilities()) if device.type == "cpu" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported: use one of {', '.join(_DTYPES)}, 'auto' or 'native'")
    return _DTYPES[dtype]


def _free_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30
