"""Fake quantisation of the TinyMyo classifier: the recipe, calibration of activation ranges and
the straight-through-estimator (STE) forward that quantisation-aware training differentiates.

Scheme (what the integer pipeline and C kernels of `export/gap9/` implement):
- activations: int8, symmetric, one scale per tensor (the points of `graph.forward`); attention
  probabilities are uint8 with the fixed scale 1/255; logits are int16.
- weights: int8 symmetric (+-127), per output channel or per tensor; biases int32 at s_in * s_w.
- scales: `multiplier` keeps each scale as calibrated; `pow2` rounds every scale up to a power of
  two (so that the integer rescales are pure shifts).
- activation ranges: `max` (absolute maximum over the calibration set) or `percentile`
  (the p-th percentile of |x| per batch, averaged over batches: clips rare outliers).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from tinymyo_jax.models.tinymyo import ModelConfig
from tinymyo_jax.quant import graph

PROB_SCALE = 1.0 / 255.0
LOGIT_QMAX = 32767
HIST_BINS = 4096


class CalibrationError(ValueError):
  """The calibration set cannot give a usable range for some tensor."""


@dataclasses.dataclass(frozen=True)
class QuantConfig:
  """Choices of the PTQ recipe (see the module docstring)."""

  weights: str = "per_channel"  # or "per_tensor"
  scales: str = "multiplier"  # or "pow2"
  activations: str = "percentile"  # or "max"
  percentile: float = 99.99
  batch_size: int = 16

  def __post_init__(self):
    for field, allowed in (("weights", ("per_channel", "per_tensor")),
                           ("scales", ("multiplier", "pow2")),
                           ("activations", ("max", "percentile"))):
      if getattr(self, field) not in allowed:
        raise ValueError(f"QuantConfig.{field}={getattr(self, field)!r}; expected one of "
                         f"{allowed}")
    if not 50.0 < self.percentile <= 100.0:
      raise ValueError(f"QuantConfig.percentile={self.percentile} must be in (50, 100]")

  @property
  def label(self) -> str:
    act = f"pct{self.percentile:g}" if self.activations == "percentile" else "max"
    return f"{self.weights}/{act}/{self.scales}"


# ----------------------------------------------------------------------------- calibration


def _batch_stats(params, config: ModelConfig, x, percentile: float):
  """{point: (abs max, percentile of |x|)} for one batch, from the float model."""
  stats = {}

  def record(name, t):
    a = jnp.abs(t).ravel()
    top = jnp.max(a)
    idx = jnp.minimum((a / jnp.maximum(top, 1e-30) * HIST_BINS).astype(jnp.int32), HIST_BINS - 1)
    cdf = jnp.cumsum(jnp.bincount(idx, length=HIST_BINS))
    k = jnp.argmax(cdf >= percentile / 100.0 * a.size)
    stats[name] = jnp.stack([top, (k + 1) / HIST_BINS * top])
    return t

  graph.forward(params, config, x, record)
  return stats


def calibrate(params, config: ModelConfig, x_calib: np.ndarray, qcfg: QuantConfig) -> dict:
  """Per-point float ranges (the value mapped to 127) from calibration windows [N, C, T]."""
  n = 0 if x_calib is None else len(x_calib)
  if n == 0:
    raise CalibrationError("calibration set is empty (0 windows); pass at least one real window")
  stats_fn = jax.jit(lambda p, x: _batch_stats(p, config, x, qcfg.percentile))
  maxes, pcts = {}, {}
  for start in tqdm(range(0, n, qcfg.batch_size), desc="calibrate", leave=False):
    for name, v in stats_fn(params, jnp.asarray(x_calib[start:start + qcfg.batch_size])).items():
      v = np.asarray(v, np.float64)
      maxes[name] = max(maxes.get(name, 0.0), float(v[0]))
      pcts.setdefault(name, []).append(float(v[1]))
  ranges = {}
  for name, top in maxes.items():
    use_max = qcfg.activations == "max" or name == "logits"
    ranges[name] = top if use_max else float(np.mean(pcts[name]))
    if not ranges[name] > 0.0:
      raise CalibrationError(
          f"calibration range of layer {name!r} is {ranges[name]} (abs max {top}) over {n} "
          f"windows: the calibration data are all zeros or degenerate")
  for a, b in (("q", "q_rot"), ("k", "k_rot")):  # integer RoPE keeps the scale of q and k
    for i in range(config.num_layers):
      if f"b{i}.{b}" in ranges:
        ranges[f"b{i}.{a}"] = ranges[f"b{i}.{b}"] = max(ranges[f"b{i}.{a}"], ranges[f"b{i}.{b}"])
  return ranges


def pow2(s):
  """The smallest power of two >= s."""
  return np.exp2(np.ceil(np.log2(s)))


def activation_scales(ranges: dict, qcfg: QuantConfig) -> dict:
  """Scale per point (float value of one integer step)."""
  scales = {}
  for name, r in ranges.items():
    if name == "probs" or name.endswith(".probs"):
      scales[name] = PROB_SCALE
      continue
    s = r / (LOGIT_QMAX if name == "logits" else 127.0)
    scales[name] = float(pow2(s) if qcfg.scales == "pow2" else s)
  return scales


# ----------------------------------------------------------------------------- fake quant


def linear_layers(params, num_layers: int):
  """(pipeline name, {"kernel", "bias"} dict) of every linear layer of the classifier."""
  yield "embed", params["patch_embed"]
  for i in range(num_layers):
    blk = params["blocks"][i]
    for name, lin in (("qkv", blk["attn"]["qkv"]), ("proj", blk["attn"]["proj"]),
                      ("fc1", blk["mlp"]["fc1"]), ("fc2", blk["mlp"]["fc2"])):
      yield f"b{i}.{name}", lin
  yield "head", params["head"]["classifier"]


def linear_input(name: str, config: ModelConfig) -> str:
  """The activation point feeding a linear layer."""
  del config
  if name == "embed":
    return "input"
  if name == "head":
    return "pool"
  blk, op = name.split(".")
  return {"qkv": f"{blk}.ln1", "proj": f"{blk}.attn", "fc1": f"{blk}.ln2",
          "fc2": f"{blk}.gelu"}[op]


def fake_quant_point(scales: dict):
  """Quantise-dequantise at each point (straight-through gradient, usable for QAT)."""
  def point(name, x):
    s = scales[name]
    if name.endswith("probs"):
      lo, hi = 0, 255
    elif name == "logits":
      lo, hi = -LOGIT_QMAX - 1, LOGIT_QMAX
    else:
      lo, hi = -128, 127
    q = jnp.clip(jnp.round(x / s), lo, hi) * s
    return x + jax.lax.stop_gradient(q - x)
  return point


def ste_round(x, step):
  """step * round(x / step) forward, identity gradient (straight-through estimator)."""
  return x + jax.lax.stop_gradient(jnp.round(x / step) * step - x)


def ste_params(params, config: ModelConfig, scales: dict, qcfg: QuantConfig) -> dict:
  """Differentiable (STE) twin of `export.gap9.quantize.fake_quant_params` for QAT: weights are
  quantised on the fly.

  Each kernel gets int8 steps from its current range (per output column or per tensor, as the
  PTQ's `quantize_weight`), each bias int32 steps of s_in * s_w with s_in the calibrated scale
  `scales` gives its input point; gradients pass straight through the rounding.
  """
  out = jax.tree.map(lambda a: a, params)
  for name, lin in linear_layers(out, config.num_layers):
    w = lin["kernel"]
    whole = jnp.max(jnp.abs(w))
    top = jnp.max(jnp.abs(w), axis=0) if qcfg.weights == "per_channel" else whole
    top = jax.lax.stop_gradient(jnp.where(top > 0, top, jnp.maximum(whole, 1e-8)))
    s_w = top / 127.0
    if qcfg.scales == "pow2":
      s_w = jnp.exp2(jnp.ceil(jnp.log2(s_w)))
    lin["kernel"] = ste_round(w, s_w)  # |w| <= 127 s_w: no clipping needed
    lin["bias"] = ste_round(lin["bias"], scales[linear_input(name, config)] * s_w)
  return out


def qat_forward(params, config: ModelConfig, x, scales: dict, qcfg: QuantConfig):
  """Logits of the fake-quantised classifier (STE weights and activations), differentiable."""
  return graph.forward(ste_params(params, config, scales, qcfg), config, x,
                       fake_quant_point(scales))
