"""What this machine's CPU can do fast, read once at start-up, and the compute dtype it implies.

`model.dtype="auto"` picks bf16 compute (fp32 params, optimizer state and loss) on accelerators
and on CPUs with native bf16 dot instructions (x86 `avx512_bf16` or `amx_bf16`, Arm `bf16`),
where XLA's bf16 x bf16 -> fp32 dots run 2-5x faster than fp32 ones; fp32 elsewhere, e.g. on
AVX2-only chips, whose bf16 dots are emulated and no faster than fp32 (BENCHMARKS.md).
"""

from __future__ import annotations

import functools
import platform

BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
DTYPES = ("float32", "bfloat16", "auto")


@functools.cache
def cpu_info() -> tuple[str, frozenset[str]]:
  """(model name, feature flags) from /proc/cpuinfo; ("", {}) where it cannot be read."""
  model, flags = "", frozenset()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not model:
          model = value.strip()
        elif key in ("flags", "features") and not flags:
          flags = frozenset(value.split())
  except OSError:
    pass
  return model or platform.processor() or platform.machine(), flags


def native_bf16_flags() -> list[str]:
  """The bf16 dot features this CPU reports (empty: bf16 dots are emulated)."""
  return [f for f in BF16_FLAGS if f in cpu_info()[1]]


def resolve_dtype(dtype: str, backend: str) -> str:
  """The compute dtype a model config's `dtype` means on `backend` ("cpu", "gpu", "tpu")."""
  if dtype not in DTYPES:
    raise ValueError(f"unknown model dtype {dtype!r}; expected one of {DTYPES}")
  if dtype != "auto":
    return dtype
  return "bfloat16" if backend != "cpu" or native_bf16_flags() else "float32"


def describe(backend: str) -> str:
  """One line for logs and benchmarks: the CPU, its bf16 features and what `auto` picks."""
  model, flags = cpu_info()
  simd = [f for f in ("avx2", "fma", "avx512f", "amx_tile", "asimd", "sve") if f in flags]
  bf16 = native_bf16_flags()
  return (f"CPU {model} [{' '.join(simd + bf16) or 'no SIMD flags read'}]; native bf16 dots: "
          f"{'yes (' + ', '.join(bf16) + ')' if bf16 else 'no'}; backend {backend}: dtype auto "
          f"-> {resolve_dtype('auto', backend)}")
