"""Integer-only golden model of the deployed classifier (numpy), the spec of the C kernels.

Conventions, shared by every operator below and by `kernels.c`:
- Tensors are int8 unless stated; intermediate arithmetic is int64 (int32 accumulators in C where
  the bound allows it, int64 otherwise). Saturation clamps to the output type's range.
- `rshift_round(v, s) = (v + 2^(s-1)) >> s` with an arithmetic (flooring) shift: rounding half up.
- `requant(acc, m, sh) = clamp(rshift_round(acc * m, sh))`, with m < 2^31 and 1 <= sh <= 62.
- GEMMs here are evaluated through float64 BLAS: operands are small integers and every partial sum
  stays far below 2^53, so the result is the exact integer product (checked per call).

Operators (bit widths; rounding; saturation):
- linear: int8 x int8 -> int32 accumulator + int32 bias; per-column requant to int8 (int16 for the
  logits).
- LayerNorm over D: sum (int32), xc = D*x - sum (int32), V = floor(sum(xc^2) / D) + eps_int
  (int64; eps_int = round(D^2 eps / s_in^2)), std = isqrt(V << 16) (exact floor square root),
  inv = floor(2^47 / std), n = rshift_round(xc * 256 * inv, 31) (Q16 normalised value),
  y = clamp(rshift_round(n * G + (B << 16), 32)) with G, B = gamma, beta / s_out in Q16.
- RoPE (`time` mode): cos/sin tables in Q14 (int16) per time index t = n mod S;
  e' = clamp(rshift_round(e*C - o*S, 14)), o' = clamp(rshift_round(o*C + e*S, 14)), same scale.
- softmax over each score row: scores int32 = q.k; d = score - rowmax <= 0;
  z = rshift_round(-d * m_sm, sh_sm) in units of 2^-12 nat; exp(-z) = EXP_HI[z >> 12] (Q24; 0 when
  z >> 12 > 20) times EXP_MID[(z >> 6) & 63] then EXP_LO[z & 63] (both Q15), each product
  rshift_round 15 -> Q24 (uint32); sum (int64);
  inv = floor(2^56 / sum); p = rshift_round(rshift_round(e * inv, 24) * 255, 32): uint8,
  scale 1/255.
- P.V: uint8 x int8 -> int32, requant to int8.
- GELU: a 256-entry int8 lookup table indexed by the int8 input (exact rounding of erf-GELU).
- residual add: y = clamp(rshift_round(a * m_a + b * m_b, sh)), one shift for both inputs.
- pooling: int32 sum over the pooled tokens, requant (the 1/count is folded into the multiplier).
"""

from __future__ import annotations

import numpy as np

from export.gap9.quantized_model import QuantizedModel


def rshift_round(v, s):
  """Rounding (half up) arithmetic right shift of int64 values."""
  v = np.asarray(v, np.int64)
  s = np.asarray(s, np.int64)
  return (v + np.left_shift(np.int64(1), s - 1)) >> s


def clamp(v, bits: int = 8, signed: bool = True):
  lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
  return np.clip(v, lo, hi).astype(np.int64)


def requant(acc, m, sh, bits: int = 8):
  return clamp(rshift_round(np.asarray(acc, np.int64) * m, sh), bits)


def imatmul(a, b):
  """Exact integer a @ b for small-integer operands (float64 BLAS, bound checked)."""
  k = a.shape[-1]
  bound = k * int(np.abs(a).max(initial=0)) * int(np.abs(b).max(initial=0))
  if bound >= 2 ** 53:
    raise OverflowError(f"imatmul: |partial sums| may reach {bound}, not exact in float64")
  return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)


def isqrt(v):
  """Floor square root of non-negative int64 values below 2^52."""
  v = np.asarray(v, np.int64)
  r = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
  r = np.where(r * r > v, r - 1, r)
  return np.where((r + 1) * (r + 1) <= v, r + 1, r)


def linear(x, t, name, bits: int = 8):
  acc = imatmul(x, t[f"{name}.w"]) + t[f"{name}.b"].astype(np.int64)
  return requant(acc, t[f"{name}.m"], t[f"{name}.sh"], bits)


def layer_norm(x, t, name):
  d = x.shape[-1]
  xc = d * x - x.sum(-1, keepdims=True)
  var = (xc * xc).sum(-1, keepdims=True) // d + t[f"{name}.eps"]
  std = np.maximum(isqrt(var << 16), 1)
  inv = (np.int64(1) << 47) // std
  n = rshift_round(xc * 256 * inv, 31)
  return clamp(rshift_round(n * t[f"{name}.g"] + t[f"{name}.b"] * 65536, 32))


def rope(x_bnhd, t):
  """Integer interleaved-pair rotation by each token's time index."""
  b, n, h, dh = x_bnhd.shape
  s = t["rope.cos"].shape[0]
  cos = np.tile(t["rope.cos"].astype(np.int64), (n // s, 1))[None, :, None, :]
  sin = np.tile(t["rope.sin"].astype(np.int64), (n // s, 1))[None, :, None, :]
  e, o = x_bnhd[..., 0::2], x_bnhd[..., 1::2]
  out = np.empty_like(x_bnhd)
  out[..., 0::2] = clamp(rshift_round(e * cos - o * sin, 14))
  out[..., 1::2] = clamp(rshift_round(o * cos + e * sin, 14))
  return out


def softmax_u8(scores, t, name):
  """Integer softmax of int32 score rows -> uint8 probabilities (scale 1/255)."""
  z = rshift_round(-(scores - scores.max(-1, keepdims=True)) * t[f"{name}.m"], t[f"{name}.sh"])
  hi = z >> 12
  lut_hi = t["exp.hi"].astype(np.int64)
  e = rshift_round(lut_hi[np.minimum(hi, len(lut_hi) - 1)] * t["exp.mid"][(z >> 6) & 63], 15)
  e = np.where(hi < len(lut_hi), rshift_round(e * t["exp.lo"][z & 63], 15), 0)
  inv = (np.int64(1) << 56) // e.sum(-1, keepdims=True)
  return rshift_round(rshift_round(e * inv, 24) * 255, 32)


def attention(q, k, v, t, blk):
  """q, k, v [B, N, H, Dh] int8 -> attention output [B, N, H*Dh] int8 (before proj)."""
  b, n, h, dh = q.shape
  out = np.empty((b, n, h, dh), np.int64)
  for bi in range(b):
    for hi in range(h):
      p = softmax_u8(imatmul(q[bi, :, hi], k[bi, :, hi].T), t, f"{blk}.sm")
      out[bi, :, hi] = requant(imatmul(p, v[bi, :, hi]), t[f"{blk}.pv.m"], t[f"{blk}.pv.sh"])
  return out.reshape(b, n, h * dh)


def quantize_input(qm: QuantizedModel, x_bct: np.ndarray) -> np.ndarray:
  """Float windows -> int8 input (the only float operation, done by the sensor front end)."""
  return clamp(np.round(np.asarray(x_bct, np.float64) / qm.scales["input"]))


def run(qm: QuantizedModel, x_q: np.ndarray) -> tuple[np.ndarray, dict]:
  """Integer forward of int8 windows [B, C, T]; returns (int16 logits [B, K], per-layer outputs)."""
  c, t = qm.config, qm.tensors
  b, ch, length = x_q.shape
  if length != int(t["num_samples"]) or ch != c.num_channels:
    raise ValueError(f"input shape {x_q.shape} does not match the quantised model "
                     f"({c.num_channels} channels x {int(t['num_samples'])} samples)")
  s = length // c.patch_size
  h, dh = c.num_heads, c.embed_dim // c.num_heads
  trace = {"input": x_q.astype(np.int64)}
  x = trace["embed"] = linear(trace["input"].reshape(b, ch * s, c.patch_size), t, "embed")
  for i in range(c.num_layers):
    blk = f"b{i}"
    y = trace[f"{blk}.ln1"] = layer_norm(x, t, f"{blk}.ln1")
    qkv = linear(y, t, f"{blk}.qkv")
    d = c.embed_dim
    q, k, v = (qkv[..., j * d:(j + 1) * d].reshape(b, ch * s, h, dh) for j in range(3))
    trace[f"{blk}.q"], trace[f"{blk}.k"], trace[f"{blk}.v"] = q, k, v
    if c.rope_mode == "time":
      q = trace[f"{blk}.q_rot"] = rope(q, t)
      k = trace[f"{blk}.k_rot"] = rope(k, t)
    a = trace[f"{blk}.attn"] = attention(q, k, v, t, blk)
    p = trace[f"{blk}.proj"] = linear(a, t, f"{blk}.proj")
    x = trace[f"{blk}.res1"] = residual(x, p, t, f"{blk}.res1")
    y = trace[f"{blk}.ln2"] = layer_norm(x, t, f"{blk}.ln2")
    f1 = trace[f"{blk}.fc1"] = linear(y, t, f"{blk}.fc1")
    g = trace[f"{blk}.gelu"] = t[f"{blk}.gelu.lut"].astype(np.int64)[f1 + 128]
    f2 = trace[f"{blk}.fc2"] = linear(g, t, f"{blk}.fc2")
    x = trace[f"{blk}.res2"] = residual(x, f2, t, f"{blk}.res2")
  x = trace["norm"] = layer_norm(x, t, "norm")
  grid = x.reshape(b, ch, s, c.embed_dim)
  acc = grid.sum(axis=2).reshape(b, -1) if c.reduction == "concat" else grid.sum(axis=(1, 2))
  pooled = trace["pool"] = requant(acc, t["pool.m"], t["pool.sh"])
  logits = trace["logits"] = linear(pooled, t, "head", bits=16)
  return logits, trace


def residual(a, b, t, name):
  return clamp(rshift_round(a * t[f"{name}.ma"] + b * t[f"{name}.mb"], t[f"{name}.sh"]))


def predict(qm: QuantizedModel, x_bct: np.ndarray, batch_size: int = 8) -> np.ndarray:
  """Dequantised logits [N, K] of float windows, run through the integer pipeline."""
  from tqdm import tqdm
  outs = []
  for i in tqdm(range(0, len(x_bct), batch_size), desc="int reference", leave=False):
    logits, _ = run(qm, quantize_input(qm, x_bct[i:i + batch_size]))
    outs.append(logits * qm.scales["logits"])
  return np.concatenate(outs).astype(np.float32)
