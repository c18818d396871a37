"""PTQ recipe, integer reference vs the fake-quant JAX model, and calibration errors."""

import numpy as np
import pytest

from export.gap9 import int_reference as ref
from export.gap9 import quantize as q
from export.gap9.quantized_model import QuantizedModel
from export.gap9.model_io import load_official_classifier, pure_params
from export.gap9.windows import zscore_windows
from tinymyo_jax.quant import fake_quant, graph
from tests.conftest import FIXTURES, need_shared


def test_functional_graph_matches_released_pytorch_logits():
  path = need_shared(FIXTURES / "tinymyo_classifier_seed0.safetensors")
  params, config = load_official_classifier(path)
  io = np.load(need_shared(FIXTURES / "classifier_io.npz"))
  np.testing.assert_allclose(np.asarray(graph.forward(params, config, io["x"])), io["logits"],
                             atol=1e-5)


def test_requant_params_reproduce_multiplier():
  mult = np.array([1e-6, 3.3e-3, 0.5, 0.999, 7.0])
  m, sh = q.requant_params(mult)
  assert np.all((m >= 2 ** 30) & (m < 2 ** 31))
  np.testing.assert_allclose(m / 2.0 ** sh, mult, rtol=2 ** -30)


def test_pow2_recipe_gives_shift_only_requant(calib_windows, make_config):
  config = make_config()
  qm = q.quantize(pure_params(config, seed=1), config, calib_windows,
                  fake_quant.QuantConfig(scales="pow2"))
  for key, value in qm.tensors.items():
    # pooling (1/count) and P.V (probabilities in steps of 1/255) keep a real multiplier
    if key.endswith(".m") and key != "pool.m" and not key.endswith(".pv.m"):
      assert np.all(value == 2 ** 30), key


def test_integer_reference_matches_fake_quant_argmax(quantized, test_windows):
  params, config, qm = quantized
  x, _ = test_windows
  fake = q.predict(q.fake_quant_forward(qm, params), x).argmax(-1)
  integer = ref.predict(qm, x).argmax(-1)
  assert len(x) >= 100
  assert (fake == integer).mean() >= 0.99


def test_integer_softmax_and_layernorm_track_float():
  rng = np.random.default_rng(0)
  scores = rng.integers(-20000, 20000, size=(4, 400))
  mult = 1e-4
  m, sh = q.requant_params(np.array([mult * 2 ** q.SOFTMAX_FRAC_BITS]))
  t = {"s.m": m[0], "s.sh": sh[0], **q.exp_tables()}
  p = ref.softmax_u8(scores, t, "s")
  logits = scores * mult
  want = np.exp(logits - logits.max(-1, keepdims=True))
  want /= want.sum(-1, keepdims=True)
  assert np.abs(p - np.round(want * 255)).max() <= 1
  x = rng.integers(-128, 128, size=(8, 48))
  ln = q._layer_norm("n", {"scale": np.ones(48), "bias": np.zeros(48)}, 0.05, 4.0 / 127, 48)
  y = ref.layer_norm(x, ln, "n")
  xf = x * 0.05
  want = (xf - xf.mean(-1, keepdims=True)) / np.sqrt(xf.var(-1, keepdims=True) + 1e-5)
  assert np.abs(y - np.clip(np.round(want / (4.0 / 127)), -128, 127)).max() <= 1


def test_isqrt_is_exact_floor():
  v = np.array([0, 1, 2, 3, 4, 15, 16, 17, 2 ** 50 - 1, 2 ** 50, 10 ** 15 + 7])
  r = ref.isqrt(v)
  assert np.all(r * r <= v) and np.all((r + 1) * (r + 1) > v)


def test_empty_calibration_set_is_rejected(make_config):
  config = make_config()
  with pytest.raises(fake_quant.CalibrationError, match=r"empty \(0 windows\)"):
    q.quantize(pure_params(config), config, np.zeros((0, 8, 1000), np.float32))


def test_all_zero_calibration_set_is_rejected(make_config):
  config = make_config()
  with pytest.raises(fake_quant.CalibrationError, match=r"3 windows.*all zeros.*'input'"):
    q.quantize(pure_params(config), config, np.zeros((3, 8, 1000), np.float32))


def test_unsupported_operator_is_named(make_config):
  config = make_config(rope_mode="flat")
  with pytest.raises(ValueError, match="unsupported operator: rope_mode 'flat'"):
    q.quantize(pure_params(config), config, zscore_windows(np.ones((2, 8, 1000))))


def test_saved_model_round_trips(tmp_path, quantized):
  _, _, qm = quantized
  qm.save(tmp_path / "m.npz")
  back = QuantizedModel.load(tmp_path / "m.npz")
  assert back.config == qm.config and back.scales == qm.scales
  assert all(np.array_equal(back.tensors[k], v) for k, v in qm.tensors.items())
  assert not list(tmp_path.glob("*.tmp*"))
