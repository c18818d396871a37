"""Flax model vs the PyTorch module, fp32 eval mode, on random and real UCI-EMG windows.

Every input batch holds one standard-normal window and one real, per-channel z-scored UCI-EMG
window (16 channels: two consecutive 8-channel windows stacked). The full-size model checks the
released rope mode for all heads at 16x1000 and 8x1000; the `time` and `flat` modes run on a
one-block model of full width (head_dim 64, so the same RoPE frequencies).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from export import parity  # noqa: E402
from export.to_torch import params_to_official  # noqa: E402
from export.torch_model import build  # noqa: E402
from tinymyo_jax.models.tinymyo import decode_variant  # noqa: E402

TOL = 1e-5
ROPE_BLOCK = dict(num_layers=1, embed_dim=192, num_heads=3, mlp_ratio=1.0)
HEADS = {"reconstruction": {}, "classification": {"num_outputs": 6},
         "regression": {"num_outputs": 5}}


@pytest.fixture(scope="module")
def uci() -> np.ndarray:
  """Four real windows [4, 8, 1000] (subject 01, from the UCI sample bundled in the repo)."""
  return parity.uci_windows(4)


def _batch(uci: np.ndarray, channels: int, seed: int) -> np.ndarray:
  real = uci[:2].reshape(1, 16, 1000)[:, :channels]
  rand = np.random.default_rng(seed).standard_normal((1, channels, 1000)).astype(np.float32)
  return np.concatenate([rand, real])


def _models(config, seed: int = 0):
  """A randomly initialised Flax model and the PyTorch module holding the same weights."""
  from flax import nnx

  from tinymyo_jax.models.tinymyo import create_model

  fmodel = create_model(config, seed=seed)
  params = nnx.to_pure_dict(nnx.state(fmodel, nnx.Param))
  return fmodel, build(config, params_to_official(params, config))


def _check(fmodel, tmodel, x, mask=None) -> float:
  ref = parity.flax_forward(fmodel, x, mask)
  got = parity.torch_forward(tmodel, x, mask)
  assert got.shape == ref.shape
  diff = parity.max_abs(got, ref)
  assert diff < TOL, f"max-abs {diff:.3g} (output scale {np.abs(ref).max():.3g})"
  return diff


def test_uci_windows_are_real_standardised_signals(uci):
  assert uci.shape == (4, 8, 1000) and uci.dtype == np.float32
  np.testing.assert_allclose(uci.std(axis=2), 1.0, atol=1e-3)
  assert len(np.unique(uci[0, 0])) > 10


@pytest.mark.parametrize("head", sorted(HEADS))
def test_full_size_released_mode_all_heads_both_shapes(uci, head):
  seeds = iter(range(10))
  if head == "reconstruction":  # the pretraining head takes any channel count
    fmodel, tmodel = _models(decode_variant("tiny", rope_mode="released"), seed=next(seeds))
    _check(fmodel, tmodel, _batch(uci, 16, 0))
    _check(fmodel, tmodel, _batch(uci, 8, 1))
    return
  for channels in (16, 8):
    config = decode_variant("tiny", rope_mode="released", head=head, num_channels=channels,
                            **HEADS[head])
    fmodel, tmodel = _models(config, seed=next(seeds))
    _check(fmodel, tmodel, _batch(uci, channels, channels))


@pytest.mark.parametrize("rope_mode", ["time", "flat", "released"])
def test_every_rope_mode_every_head_both_shapes(uci, rope_mode):
  for head, extra in HEADS.items():
    for channels in (16, 8):
      config = decode_variant("tiny", rope_mode=rope_mode, head=head, num_channels=channels,
                              **ROPE_BLOCK, **extra)
      fmodel, tmodel = _models(config, seed=channels)
      _check(fmodel, tmodel, _batch(uci, channels, channels))


@pytest.mark.parametrize("rope_mode", ["time", "flat"])
def test_masked_pretraining_output_with_positional_rope(uci, rope_mode):
  fmodel, tmodel = _models(decode_variant("tiny", rope_mode=rope_mode, **ROPE_BLOCK))
  x = _batch(uci, 16, 5)
  mask = np.random.default_rng(5).random((2, 800)) < 0.5
  _check(fmodel, tmodel, x, mask)
  # with positions, masked tokens no longer all produce the same output (they do when released)
  out = parity.torch_forward(tmodel, x, mask)[0][mask[0]]
  assert np.abs(out - out[0]).max() > 1e-3


def test_rope_modes_differ_so_the_parity_above_is_not_vacuous(uci):
  x = _batch(uci, 8, 3)
  outs = {m: parity.torch_forward(_models(decode_variant("tiny", rope_mode=m, **ROPE_BLOCK))[1],
                                  x) for m in ("time", "flat", "released")}
  assert parity.max_abs(outs["time"], outs["flat"]) > 1e-3
  assert parity.max_abs(outs["time"], outs["released"]) > 1e-3
