"""Post-training INT8 quantisation of the TinyMyo classifier: the integer constants of the C
pipeline from calibrated scales, and the fake-quantised JAX model that mirrors it.

Recipe, calibration and the fake-quant points live in `tinymyo_jax.quant.fake_quant` (QAT uses
them too); the scheme is described there. Requantisation: y = clamp(round(acc * m / 2^sh));
`multiplier` mode gives each rescale a 31-bit multiplier m; `pow2` mode rounds every scale up to
a power of two, so m = 2^30 and the rescale is a pure rounding shift (except pooling, 1/count,
and P.V, whose probabilities step by 1/255).

`python -m export.gap9.ptq_report --ckpt DIR` prints the fp32 vs INT8 accuracy table.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special
from tqdm import tqdm

from export.gap9.quantized_model import QuantizedModel
from tinymyo_jax.models.tinymyo import ModelConfig
from tinymyo_jax.quant import graph
from tinymyo_jax.quant.fake_quant import (PROB_SCALE, CalibrationError, QuantConfig,
                                          activation_scales, calibrate, fake_quant_point,
                                          linear_input, linear_layers, pow2)

SOFTMAX_FRAC_BITS = 12  # softmax inputs are rescaled to units of 2^-12 nat
ROPE_FRAC_BITS = 14
LN_FRAC_BITS = 16


# ----------------------------------------------------------------------------- integer params


def requant_params(mult, name: str = "?") -> tuple[np.ndarray, np.ndarray]:
  """Positive real multipliers -> (m, sh) with mult ~= m / 2^sh and m in [2^30, 2^31)."""
  mult = np.asarray(mult, np.float64)
  if np.any(~(mult > 0)) or np.any(~np.isfinite(mult)):
    raise ValueError(f"layer {name!r}: requantisation multiplier must be positive and finite, "
                     f"got {mult[~(mult > 0) | ~np.isfinite(mult)][:4]}")
  sh = 30 - np.floor(np.log2(mult)).astype(np.int64)
  m = np.round(mult * np.exp2(sh)).astype(np.int64)
  over = m >= 2 ** 31
  m[over] //= 2
  sh[over] -= 1
  if np.any(sh < 1):
    raise ValueError(f"layer {name!r}: requantisation multiplier {mult.max():.4g} is above 2^29; "
                     f"the scales are inconsistent")
  deep = sh > 62  # multipliers below 2^-32: only the rounding shift's range is exceeded
  m[deep] = np.right_shift(m[deep], sh[deep] - 62)
  sh[deep] = 62
  return m, sh


def quantize_weight(w: np.ndarray, qcfg: QuantConfig) -> tuple[np.ndarray, np.ndarray]:
  """Kernel [in, out] -> (int8 kernel, per-output scale [out])."""
  w = np.asarray(w, np.float64)
  if qcfg.weights == "per_channel":
    top = np.abs(w).max(axis=0)
    top = np.where(top > 0, top, max(np.abs(w).max(), 1e-8))
  else:
    top = np.full(w.shape[1], max(np.abs(w).max(), 1e-8))
  s = top / 127.0
  if qcfg.scales == "pow2":
    s = pow2(s)
  q = np.clip(np.round(w / s), -127, 127).astype(np.int8)
  return q, s


def _linear(name, lin, s_in, s_out, qcfg, out_dtype=np.int8):
  """int8 weights, int32 bias and requant (m, sh) per output column."""
  w_q, s_w = quantize_weight(lin["kernel"], qcfg)
  s_acc = s_in * s_w
  b = np.round(np.asarray(lin["bias"], np.float64) / s_acc)
  if np.abs(b).max(initial=0) >= 2 ** 31:
    j = int(np.abs(b).argmax())
    raise ValueError(f"layer {name!r}: bias {float(lin['bias'][j]):.4g} of column {j} needs "
                     f"{abs(b[j]):.3g} steps of {s_acc[j]:.3g}, beyond int32")
  m, sh = requant_params(s_acc / np.broadcast_to(s_out, s_acc.shape), name)
  return {f"{name}.w": w_q, f"{name}.b": b.astype(np.int32), f"{name}.m": m, f"{name}.sh": sh,
          f"{name}.s_w": s_w}


def _layer_norm(name, ln, s_in, s_out, dim):
  g = np.asarray(ln["scale"], np.float64) / s_out
  b = np.asarray(ln["bias"], np.float64) / s_out
  return {f"{name}.g": np.round(g * 2 ** LN_FRAC_BITS).astype(np.int64),
          f"{name}.b": np.round(b * 2 ** LN_FRAC_BITS).astype(np.int64),
          f"{name}.eps": np.int64(round(dim * dim * graph.LN_EPS / s_in ** 2))}


def _add(name, s_a, s_b, s_out):
  ma, mb = s_a / s_out, s_b / s_out
  sh = 30 - int(np.floor(np.log2(max(ma, mb))))
  return {f"{name}.ma": np.int64(round(ma * 2 ** sh)), f"{name}.mb": np.int64(round(mb * 2 ** sh)),
          f"{name}.sh": np.int64(sh)}


def _scalar_requant(name, mult):
  m, sh = requant_params(np.array([mult]), name)
  return {f"{name}.m": np.int64(m[0]), f"{name}.sh": np.int64(sh[0])}


def exp_tables() -> dict:
  """exp(-z / 2^12) = HI[z >> 12] * MID[(z >> 6) & 63] * LO[z & 63]; HI Q24 (0..20 nats), Q15."""
  return {"exp.hi": np.round(np.exp(-np.arange(21.0)) * 2 ** 24).astype(np.int64),
          "exp.mid": np.round(np.exp(-np.arange(64) / 64.0) * 2 ** 15).astype(np.int64),
          "exp.lo": np.round(np.exp(-np.arange(64) / 4096.0) * 2 ** 15).astype(np.int64)}


def build(params, config: ModelConfig, scales: dict, qcfg: QuantConfig) -> QuantizedModel:
  """Integer tensors (weights, biases, multipliers, LUTs) for calibrated activation scales.

  The constants that depend on the window length are added by `finalize_for_length`.
  """
  s = scales
  d, dh = config.embed_dim, config.embed_dim // config.num_heads
  t = dict(exp_tables())
  t.update(_linear("embed", params["patch_embed"], s["input"], s["embed"], qcfg))
  res = "embed"
  for i in range(config.num_layers):
    p, b = params["blocks"][i], f"b{i}"
    t.update(_layer_norm(f"{b}.ln1", p["norm1"], s[res], s[f"{b}.ln1"], d))
    s_qkv = np.repeat([s[f"{b}.q"], s[f"{b}.k"], s[f"{b}.v"]], d)
    t.update(_linear(f"{b}.qkv", p["attn"]["qkv"], s[f"{b}.ln1"], s_qkv, qcfg))
    t.update(_scalar_requant(f"{b}.sm", s[f"{b}.q"] * s[f"{b}.k"] / np.sqrt(dh)
                             * 2 ** SOFTMAX_FRAC_BITS))
    t.update(_scalar_requant(f"{b}.pv", PROB_SCALE * s[f"{b}.v"] / s[f"{b}.attn"]))
    t.update(_linear(f"{b}.proj", p["attn"]["proj"], s[f"{b}.attn"], s[f"{b}.proj"], qcfg))
    t.update(_add(f"{b}.res1", s[res], s[f"{b}.proj"], s[f"{b}.res1"]))
    t.update(_layer_norm(f"{b}.ln2", p["norm2"], s[f"{b}.res1"], s[f"{b}.ln2"], d))
    t.update(_linear(f"{b}.fc1", p["mlp"]["fc1"], s[f"{b}.ln2"], s[f"{b}.fc1"], qcfg))
    grid = np.arange(-128, 128) * s[f"{b}.fc1"]
    gelu = 0.5 * grid * (1.0 + special.erf(grid / np.sqrt(2.0)))
    t[f"{b}.gelu.lut"] = np.clip(np.round(gelu / s[f"{b}.gelu"]), -128, 127).astype(np.int8)
    t.update(_linear(f"{b}.fc2", p["mlp"]["fc2"], s[f"{b}.gelu"], s[f"{b}.fc2"], qcfg))
    t.update(_add(f"{b}.res2", s[f"{b}.res1"], s[f"{b}.fc2"], s[f"{b}.res2"]))
    res = f"{b}.res2"
  t.update(_layer_norm("norm", params["norm"], s[res], s["norm"], d))
  t.update(_linear("head", params["head"]["classifier"], s["pool"], s["logits"], qcfg))
  return QuantizedModel(config, qcfg, dict(scales), t)


def finalize_for_length(qm: QuantizedModel, num_samples: int) -> QuantizedModel:
  """Sets the window-length-dependent constants (pool multiplier, RoPE tables)."""
  c = qm.config
  s = num_samples // c.patch_size
  t = dict(qm.tensors)
  count = s * (c.num_channels if c.reduction == "mean" else 1)
  t.update(_scalar_requant("pool", qm.scales["norm"] / (count * qm.scales["pool"])))
  t["pool.count"] = np.int64(count)  # tokens summed per pooled value: S or C*S
  if c.rope_mode == "time":
    cos, sin = graph.rope_tables(s, c.embed_dim // c.num_heads)
    t["rope.cos"] = np.round(cos * 2 ** ROPE_FRAC_BITS).astype(np.int16)
    t["rope.sin"] = np.round(sin * 2 ** ROPE_FRAC_BITS).astype(np.int16)
  t["num_samples"] = np.int64(num_samples)
  return dataclasses.replace(qm, tensors=t)


def quantize(params, config: ModelConfig, x_calib: np.ndarray,
             qcfg: QuantConfig = QuantConfig()) -> QuantizedModel:
  """Calibrates on x_calib [N, C, T] and returns the integer model for windows of length T."""
  graph.check_deployable(config)
  if x_calib is not None and len(x_calib) and not np.any(x_calib):
    raise CalibrationError(f"calibration set of {len(x_calib)} windows of shape "
                           f"{tuple(x_calib.shape[1:])} is all zeros (layer 'input' range 0.0)")
  scales = activation_scales(calibrate(params, config, x_calib, qcfg), qcfg)
  return finalize_for_length(build(params, config, scales, qcfg), x_calib.shape[-1])


# ----------------------------------------------------------------------------- fake quant


def fake_quant_params(params, qm: QuantizedModel) -> dict:
  """Float params whose linear layers hold the dequantised int8 weights and int32 biases."""
  t = qm.tensors
  out = jax.tree.map(lambda a: a, params)
  for name, lin in linear_layers(out, qm.config.num_layers):
    s_w = t[f"{name}.s_w"]
    lin["kernel"] = (t[f"{name}.w"].astype(np.float64) * s_w).astype(np.float32)
    s_in = qm.scales[linear_input(name, qm.config)]
    lin["bias"] = (t[f"{name}.b"] * s_in * s_w).astype(np.float32)
  return out


def fake_quant_forward(qm: QuantizedModel, params):
  """jitted fn(x) -> logits of the fake-quantised JAX model."""
  fq_params = fake_quant_params(params, qm)
  scales = {k: np.float32(v) for k, v in qm.scales.items()}
  for i in range(qm.config.num_layers):
    scales[f"b{i}.probs"] = np.float32(PROB_SCALE)
  point = fake_quant_point(scales)
  return jax.jit(lambda x: graph.forward(fq_params, qm.config, x, point))


def float_forward(params, config: ModelConfig):
  """jitted fn(x) -> logits of the float model."""
  return jax.jit(lambda x: graph.forward(params, config, x))


def predict(fn, x: np.ndarray, batch_size: int = 16, desc: str = "predict") -> np.ndarray:
  """Logits [N, K] of a jitted forward over windows, batch by batch."""
  outs = [np.asarray(fn(jnp.asarray(x[i:i + batch_size])))
          for i in tqdm(range(0, len(x), batch_size), desc=desc, leave=False)]
  return np.concatenate(outs).astype(np.float32)


# PTQ recipes by name (the command lines' --recipe).
RECIPES = {
    "naive": QuantConfig(weights="per_tensor", activations="max"),
    "per_channel": QuantConfig(weights="per_channel", activations="max"),
    "percentile": QuantConfig(weights="per_tensor", activations="percentile"),
    "per_channel+percentile": QuantConfig(weights="per_channel", activations="percentile"),
    "per_channel+percentile+pow2": QuantConfig(weights="per_channel", activations="percentile",
                                               scales="pow2"),
}
