"""The compute dtype `model.dtype="auto"` picks from the CPU's features."""

from __future__ import annotations

import pytest

from tinymyo_jax import cpu_features


@pytest.mark.parametrize("flags,expected", [
    ({"avx2", "fma"}, "float32"),                      # AVX2-only x86 (e.g. AMD Zen 3)
    ({"avx2", "avx512f", "avx512_bf16"}, "bfloat16"),  # AMD Zen 4/5, Intel Cooper Lake+
    ({"avx512f", "amx_tile", "amx_bf16"}, "bfloat16"),  # Intel Sapphire Rapids+
    ({"asimd", "bf16"}, "bfloat16"),                   # Arm v8.6+
    (set(), "float32"),                                # /proc/cpuinfo unreadable
])
def test_auto_follows_native_bf16_dots_on_cpu(monkeypatch, flags, expected):
  monkeypatch.setattr(cpu_features, "cpu_info", lambda: ("test cpu", frozenset(flags)))
  assert cpu_features.resolve_dtype("auto", "cpu") == expected
  assert cpu_features.describe("cpu").endswith(f"dtype auto -> {expected}")
  assert cpu_features.resolve_dtype("auto", "gpu") == "bfloat16"
  assert cpu_features.resolve_dtype("float32", "tpu") == "float32"


def test_unknown_dtype_is_named():
  with pytest.raises(ValueError, match="'float16'"):
    cpu_features.resolve_dtype("float16", "cpu")


def test_auto_reaches_the_model_config(monkeypatch):
  from configs import finetune
  from tinymyo_jax import train

  monkeypatch.setattr(cpu_features, "cpu_info", lambda: ("test cpu", frozenset({"avx2"})))
  config = finetune.get_config("uci_200hz").unlock()
  config.model.dtype = "auto"
  assert train.model_config_from(config).dtype == "float32"
  monkeypatch.setattr(cpu_features, "cpu_info", lambda: ("test cpu", frozenset({"amx_bf16"})))
  assert train.model_config_from(config).dtype == "bfloat16"


def test_this_machine_is_read():
  model, flags = cpu_features.cpu_info()
  assert model
  assert "dtype auto -> " in cpu_features.describe("cpu")
