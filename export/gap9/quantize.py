"""Post-training INT8 quantisation of the TinyMyo classifier, calibrated on real windows.

Scheme (what the C kernels implement):
- activations: int8, symmetric, one scale per tensor (the points of `graph.forward`); attention
  probabilities are uint8 with the fixed scale 1/255; logits are int16.
- weights: int8 symmetric (+-127), per output channel or per tensor; biases int32 at s_in * s_w.
- requantisation: y = clamp(round(acc * m / 2^sh)); `multiplier` mode gives each rescale a 31-bit
  multiplier m; `pow2` mode rounds every scale up to a power of two, so m = 2^30 and the rescale
  is a pure rounding shift (except pooling, 1/count, and P.V, whose probabilities step by 1/255).
- activation ranges: `max` (absolute maximum over the calibration set) or `percentile`
  (the p-th percentile of |x| per batch, averaged over batches: clips rare outliers).

`python -m export.gap9.quantize --ckpt DIR` prints the fp32 vs INT8 accuracy table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special
from tqdm import tqdm

from export.gap9 import graph
from tinymyo_jax import atomic_io
from tinymyo_jax.models.tinymyo import ModelConfig

PROB_SCALE = 1.0 / 255.0
LOGIT_QMAX = 32767
HIST_BINS = 4096
SOFTMAX_FRAC_BITS = 12  # softmax inputs are rescaled to units of 2^-12 nat
ROPE_FRAC_BITS = 14
LN_FRAC_BITS = 16


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


def _pow2(s):
  return np.exp2(np.ceil(np.log2(s)))


def activation_scales(ranges: dict, qcfg: QuantConfig) -> dict:
  """Scale per point (float value of one integer step)."""
  scales = {}
  for name, r in ranges.items():
    if name == "probs" or name.endswith(".probs"):
      scales[name] = PROB_SCALE
      continue
    s = r / (LOGIT_QMAX if name == "logits" else 127.0)
    scales[name] = float(_pow2(s) if qcfg.scales == "pow2" else s)
  return scales


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
    s = _pow2(s)
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


@dataclasses.dataclass
class QuantizedModel:
  """Everything the integer pipeline needs: integer tensors by name plus the float scales."""

  config: ModelConfig
  qcfg: QuantConfig
  scales: dict
  tensors: dict

  def save(self, path: str | Path) -> None:
    """Writes an .npz atomically."""
    meta = json.dumps({"config": dataclasses.asdict(self.config),
                       "qcfg": dataclasses.asdict(self.qcfg), "scales": self.scales})
    with atomic_io.atomic_path(path, suffix=".npz") as tmp:
      np.savez(tmp, __meta__=np.array(meta), **self.tensors)

  @classmethod
  def load(cls, path: str | Path) -> QuantizedModel:
    with np.load(path) as z:
      meta = json.loads(str(z["__meta__"]))
      tensors = {k: z[k] for k in z.files if k != "__meta__"}
    return cls(ModelConfig(**meta["config"]), QuantConfig(**meta["qcfg"]), meta["scales"],
               tensors)


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


def linear_layers(params, num_layers: int):
  """(pipeline name, {"kernel", "bias"} dict) of every linear layer of the classifier."""
  yield "embed", params["patch_embed"]
  for i in range(num_layers):
    blk = params["blocks"][i]
    for name, lin in (("qkv", blk["attn"]["qkv"]), ("proj", blk["attn"]["proj"]),
                      ("fc1", blk["mlp"]["fc1"]), ("fc2", blk["mlp"]["fc2"])):
      yield f"b{i}.{name}", lin
  yield "head", params["head"]["classifier"]


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


def fake_quant_forward(qm: QuantizedModel, params):
  """jitted fn(x) -> logits of the fake-quantised JAX model."""
  fq_params = fake_quant_params(params, qm)
  scales = {k: np.float32(v) for k, v in qm.scales.items()}
  for i in range(qm.config.num_layers):
    scales[f"b{i}.probs"] = np.float32(PROB_SCALE)
  point = fake_quant_point(scales)
  return jax.jit(lambda x: graph.forward(fq_params, qm.config, x, point))


def _ste_round(x, step):
  """step * round(x / step) forward, identity gradient (straight-through estimator)."""
  return x + jax.lax.stop_gradient(jnp.round(x / step) * step - x)


def ste_params(params, config: ModelConfig, scales: dict, qcfg: QuantConfig) -> dict:
  """Differentiable (STE) twin of `fake_quant_params` for QAT: weights are quantised on the fly.

  Each kernel gets int8 steps from its current range (per output column or per tensor, as
  `quantize_weight`), each bias int32 steps of s_in * s_w with s_in the calibrated scale
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
    lin["kernel"] = _ste_round(w, s_w)  # |w| <= 127 s_w: no clipping needed
    lin["bias"] = _ste_round(lin["bias"], scales[linear_input(name, config)] * s_w)
  return out


def qat_forward(params, config: ModelConfig, x, scales: dict, qcfg: QuantConfig):
  """Logits of the fake-quantised classifier (STE weights and activations), differentiable."""
  return graph.forward(ste_params(params, config, scales, qcfg), config, x,
                       fake_quant_point(scales))


def float_forward(params, config: ModelConfig):
  """jitted fn(x) -> logits of the float model."""
  return jax.jit(lambda x: graph.forward(params, config, x))


def predict(fn, x: np.ndarray, batch_size: int = 16, desc: str = "predict") -> np.ndarray:
  """Logits [N, K] of a jitted forward over windows, batch by batch."""
  outs = [np.asarray(fn(jnp.asarray(x[i:i + batch_size])))
          for i in tqdm(range(0, len(x), batch_size), desc=desc, leave=False)]
  return np.concatenate(outs).astype(np.float32)


# ----------------------------------------------------------------------------- CLI

RECIPES = {
    "naive": QuantConfig(weights="per_tensor", activations="max"),
    "per_channel": QuantConfig(weights="per_channel", activations="max"),
    "percentile": QuantConfig(weights="per_tensor", activations="percentile"),
    "per_channel+percentile": QuantConfig(weights="per_channel", activations="percentile"),
    "per_channel+percentile+pow2": QuantConfig(weights="per_channel", activations="percentile",
                                               scales="pow2"),
}


def accuracy_table(params, config, x_cal, x_test, y_test, recipes=RECIPES,
                   with_integer: str | None = "per_channel+percentile") -> list[dict]:
  """Rows {recipe, accuracy, drop_pp, agreement_vs_fp32} on the test windows."""
  from export.gap9 import int_reference  # circular at import time otherwise
  fp = predict(float_forward(params, config), x_test, desc="fp32").argmax(-1)
  base = float((fp == y_test).mean() * 100)
  rows = [{"recipe": "fp32", "accuracy": base, "drop_pp": 0.0, "agree_fp32": 100.0}]
  for name, qcfg in recipes.items():
    qm = quantize(params, config, x_cal, qcfg)
    pred = predict(fake_quant_forward(qm, params), x_test, desc=name).argmax(-1)
    acc = float((pred == y_test).mean() * 100)
    rows.append({"recipe": f"{name} ({qcfg.label}) fake-quant", "accuracy": acc,
                 "drop_pp": base - acc, "agree_fp32": float((pred == fp).mean() * 100)})
    if name == with_integer:
      ipred = int_reference.predict(qm, x_test).argmax(-1)
      acc = float((ipred == y_test).mean() * 100)
      rows.append({"recipe": f"{name} integer reference", "accuracy": acc,
                   "drop_pp": base - acc, "agree_fp32": float((ipred == fp).mean() * 100),
                   "agree_fake_quant": float((ipred == pred).mean() * 100)})
  return rows


def format_table(rows: list[dict]) -> str:
  """Markdown table of `accuracy_table` rows (integer row: argmax agreement with fake-quant)."""
  lines = ["| recipe | accuracy % | drop (pp) | argmax = fp32 % | argmax = fake-quant % |",
           "|---|---:|---:|---:|---:|"]
  for r in rows:
    fq = f"{r['agree_fake_quant']:.1f}" if "agree_fake_quant" in r else ""
    lines.append(f"| {r['recipe']} | {r['accuracy']:.2f} | {r['drop_pp']:+.2f} | "
                 f"{r['agree_fp32']:.1f} | {fq} |")
  return "\n".join(lines)


def load_model_arg(args):
  """(params, config, windows.InputSpec) from --ckpt, or --safetensors (released layout)."""
  from export.gap9 import model_io
  from export.gap9.windows import InputSpec
  if args.ckpt:
    return model_io.load_checkpoint(args.ckpt)
  if args.safetensors:
    return (*model_io.load_official_classifier(args.safetensors, rope_mode=args.rope_mode),
            InputSpec())
  raise SystemExit("pass --ckpt CKPT_DIR (or --safetensors FILE for the released layout)")


def add_model_args(parser: argparse.ArgumentParser) -> None:
  from export.gap9.windows import UCI_ZIP
  parser.add_argument("--ckpt", help="checkpoint dir readable by tinymyo_jax.checkpointing")
  parser.add_argument("--safetensors", help="released-layout classifier .safetensors")
  parser.add_argument("--rope_mode", default="released", help="with --safetensors only")
  parser.add_argument("--data_dir", help="prepared TFDS dir with uci_emg (else --uci_zip)")
  parser.add_argument("--uci_zip", default=str(UCI_ZIP),
                      help="UCI-EMG zip to cut windows from without --data_dir (default: the "
                           "bundled 10-subject sample)")
  parser.add_argument("--calib", type=int, default=256, help="calibration windows (train split)")
  parser.add_argument("--test_limit", type=int, default=None)


def main(argv=None):
  from export.gap9.windows import load_windows
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  add_model_args(parser)
  parser.add_argument("--out", help="write the chosen recipe's quantised model (.npz) here")
  parser.add_argument("--recipe", default="per_channel+percentile", choices=sorted(RECIPES))
  args = parser.parse_args(argv)
  params, config, spec = load_model_arg(args)
  x_cal, _ = load_windows("train", data_dir=args.data_dir, limit=args.calib, spec=spec,
                          zip_path=args.uci_zip)
  x_test, y_test = load_windows("test", data_dir=args.data_dir, limit=args.test_limit, spec=spec,
                                zip_path=args.uci_zip)
  print(f"model {config}\ninput {spec}\ncalibration windows {len(x_cal)} (train), "
        f"test windows {len(x_test)}")
  rows = accuracy_table(params, config, x_cal, x_test, y_test, with_integer=args.recipe)
  print(format_table(rows))
  if args.out:
    quantize(params, config, x_cal, RECIPES[args.recipe]).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
