"""QDQ ONNX of the quantised classifier, built from a `QuantizedModel` (this pipeline's scales).

The graph follows `graph.forward` operator by operator. Every named point becomes a
QuantizeLinear -> DequantizeLinear pair with the pipeline's scale and zero point 0: int8 for
activations, uint8 (scale 1/255) for attention probabilities, int16 for the logits. Linear
layers read their int8 weights (per output channel with `axis=1`, or per tensor) and int32
biases (scale s_in * s_w) through DequantizeLinear, then MatMul + Add. LayerNormalization keeps
float gamma/beta, recovered from the integer pipeline's Q16 constants (within 2^-17 of one output
step of the float ones). GELU is the exact Erf form; `time` RoPE uses constant float cos/sin
tables; `released` RoPE is left out (a no-op in q.k). Opset 21 (the first with int16 QDQ).

`python -m export.gap9.qdq_onnx --ckpt CKPT --data_dir DIR --calib N --out FILE.onnx`
calibrates like `export.gap9.ptq_report` and writes the file (checked with `onnx.checker`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.gap9 import quantize as q
from export.gap9.quantized_model import QuantizedModel
from tinymyo_jax import atomic_io
from tinymyo_jax.quant import fake_quant, graph

OPSET = 21  # int16 QuantizeLinear / DequantizeLinear need opset 21
INPUT = "emg"
OUTPUT = "logits"  # also the name of the last point


def point_dtype(name: str) -> type:
  """Integer type of a named point: uint8 probabilities, int16 logits, int8 elsewhere."""
  if name.endswith("probs"):
    return np.uint8
  return np.int16 if name == "logits" else np.int8


class _Builder:
  """Accumulates nodes and initializers under unique, readable names."""

  def __init__(self):
    self.nodes, self.inits = [], []

  def const(self, name: str, value) -> str:
    self.inits.append(numpy_helper.from_array(np.asarray(value), name))
    return name

  def op(self, op_type: str, inputs: list[str], out: str, **attrs) -> str:
    self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
    return out

  def shape(self, name: str, dims) -> str:
    return self.const(name, np.asarray(dims, np.int64))


class _Exporter:
  """Emits the graph of one `QuantizedModel` (see the module docstring).

  Every Q/DQ pair sits after the layout operators (Reshape, Slice, Transpose) that precede its
  consumer, so no DequantizeLinear feeds a layout operator; quantisation per tensor commutes with
  them, so the values are those of `graph.forward`. (onnxruntime 1.32 would otherwise move the
  pair across the layout operator and emit a QuantizeLinear it cannot load, issue #25526.)
  """

  def __init__(self, qm: QuantizedModel):
    graph.check_deployable(qm.config)
    self.qm, self.c, self.t = qm, qm.config, qm.tensors
    self.g = _Builder()

  def point(self, name: str, x: str) -> str:
    """QuantizeLinear -> DequantizeLinear at a named point; returns the dequantised tensor."""
    g = self.g
    scale = g.const(f"{name}.scale", np.float32(self.qm.scales[name]))
    zero = g.const(f"{name}.zero_point", point_dtype(name)(0))
    x_q = g.op("QuantizeLinear", [x, scale, zero], f"{name}.quantize")
    return g.op("DequantizeLinear", [x_q, scale, zero], name)

  def dequantize(self, name: str, values: np.ndarray, scale, axis: int | None) -> str:
    """DequantizeLinear of an integer initializer (per channel along `axis`, or per tensor)."""
    g = self.g
    inputs = [g.const(name, values), g.const(f"{name}_scale", np.asarray(scale, np.float32)),
              g.const(f"{name}_zero_point", np.zeros(np.shape(scale), values.dtype))]
    return g.op("DequantizeLinear", inputs, f"{name}_dq",
                **({} if axis is None else {"axis": axis}))

  def linear(self, name: str, x: str) -> str:
    """x @ DQ(int8 W) + DQ(int32 b), before the output point."""
    t = self.t
    s_w = np.asarray(t[f"{name}.s_w"], np.float64)
    s_b = self.qm.scales[fake_quant.linear_input(name, self.c)] * s_w
    per_channel = self.qm.qcfg.weights == "per_channel"
    pick = (lambda v: v) if per_channel else (lambda v: v[0])  # noqa: E731
    w = self.dequantize(f"{name}.w", t[f"{name}.w"], pick(s_w), 1 if per_channel else None)
    b = self.dequantize(f"{name}.b", t[f"{name}.b"].astype(np.int32), pick(s_b),
                        0 if per_channel else None)
    return self.g.op("Add", [self.g.op("MatMul", [x, w], f"{name}.matmul"), b], f"{name}.add")

  def layer_norm(self, name: str, x: str) -> str:
    """Float LayerNormalization with gamma/beta = Q16 constants * s_out."""
    g, unit = self.g, self.qm.scales[name] / 2.0 ** q.LN_FRAC_BITS
    gamma = g.const(f"{name}.gamma", (self.t[f"{name}.g"] * unit).astype(np.float32))
    beta = g.const(f"{name}.beta", (self.t[f"{name}.b"] * unit).astype(np.float32))
    return g.op("LayerNormalization", [x, gamma, beta], f"{name}.layernorm", axis=-1,
                epsilon=graph.LN_EPS)

  def gelu(self, name: str, x: str) -> str:
    """Exact GELU: 0.5 * x * (1 + erf(x / sqrt(2)))."""
    g = self.g
    erf = g.op("Erf", [g.op("Div", [x, g.const(f"{name}.sqrt2", np.float32(np.sqrt(2.0)))],
                            f"{name}.div")], f"{name}.erf")
    one_plus = g.op("Add", [erf, g.const(f"{name}.one", np.float32(1.0))], f"{name}.add")
    half_x = g.op("Mul", [x, g.const(f"{name}.half", np.float32(0.5))], f"{name}.half_x")
    return g.op("Mul", [half_x, one_plus], f"{name}.mul")

  def rope(self, name: str, x: str, tables: dict, transposed: bool) -> str:
    """Interleaved-pair RoPE: x * cos + swap(x) * sin, swap(e, o) = (-o, e).

    x is [B, H, N, Dh] (queries), or [B, H, Dh, N] with `transposed` (keys, ready for q @ k^T);
    swap is an exact signed permutation MatMul, so the values equal `graph.rotate_time`.
    """
    g = self.g
    key = "t" if transposed else "n"
    swapped = (g.op("MatMul", [tables[f"swap_{key}"], x], f"{name}.swap") if transposed
               else g.op("MatMul", [x, tables[f"swap_{key}"]], f"{name}.swap"))
    return g.op("Add", [g.op("Mul", [x, tables[f"cos_{key}"]], f"{name}.x_cos"),
                        g.op("Mul", [swapped, tables[f"sin_{key}"]], f"{name}.swap_sin")],
                f"{name}.rotated")

  def rope_tables(self, num_patches: int) -> dict:
    """Constants of `rope`: cos/sin per token and lane, and the swap matrix, in both layouts."""
    dh = self.c.embed_dim // self.c.num_heads
    cos, sin = (np.repeat(np.tile(v, (self.c.num_channels, 1)), 2, axis=1).astype(np.float32)
                for v in graph.rope_tables(num_patches, dh))  # [N, Dh], token n -> t = n mod S
    swap = np.zeros((dh, dh), np.float32)
    swap[1::2, 0::2] = -np.eye(dh // 2)  # (x @ swap)[2i] = -x[2i+1]
    swap[0::2, 1::2] = np.eye(dh // 2)  # (x @ swap)[2i+1] = x[2i]
    values = {"cos_n": cos, "sin_n": sin, "swap_n": swap,
              "cos_t": cos.T.copy(), "sin_t": sin.T.copy(), "swap_t": swap.T.copy()}
    return {k: self.g.const(f"rope.{k}", v) for k, v in values.items()}

  def heads(self, b: str, qkv: str, j: int, part: str, perm) -> str:
    """Slice j of the fused qkv output [B, N, 3D] -> [B, H, ...] in layout `perm`."""
    g, d, h = self.g, self.c.embed_dim, self.c.num_heads
    sl = g.op("Slice", [qkv, g.shape(f"{b}.{part}_start", [j * d]),
                        g.shape(f"{b}.{part}_end", [(j + 1) * d]),
                        g.shape(f"{b}.{part}_axis", [-1])], f"{b}.{part}_slice")
    split = g.op("Reshape", [sl, g.shape(f"{b}.{part}_shape", [0, 0, h, d // h])],
                 f"{b}.{part}_split")
    return self.point(f"{b}.{part}", g.op("Transpose", [split], f"{b}.{part}_t", perm=perm))

  def block(self, i: int, x: str, tokens: int, rope) -> str:
    g, b = self.g, f"b{i}"
    d, h = self.c.embed_dim, self.c.num_heads
    y = self.point(f"{b}.ln1", self.layer_norm(f"{b}.ln1", x))
    qkv = self.linear(f"{b}.qkv", y)
    q_ = self.heads(b, qkv, 0, "q", [0, 2, 1, 3])  # [B, H, N, Dh]
    k_ = self.heads(b, qkv, 1, "k", [0, 2, 3, 1])  # [B, H, Dh, N]
    v_ = self.heads(b, qkv, 2, "v", [0, 2, 1, 3])  # [B, H, N, Dh]
    if rope is not None:
      q_ = self.point(f"{b}.q_rot", self.rope(f"{b}.q_rope", q_, rope, transposed=False))
      k_ = self.point(f"{b}.k_rot", self.rope(f"{b}.k_rope", k_, rope, transposed=True))
    scores = g.op("Div", [g.op("MatMul", [q_, k_], f"{b}.qk"),
                          g.const(f"{b}.sqrt_dh", np.float32(np.sqrt(d // h)))], f"{b}.scores")
    probs = self.point(f"{b}.probs", g.op("Softmax", [scores], f"{b}.softmax", axis=-1))
    pv = g.op("Transpose", [g.op("MatMul", [probs, v_], f"{b}.pv")], f"{b}.pv_t",
              perm=[0, 2, 1, 3])
    att = self.point(f"{b}.attn", g.op("Reshape", [pv, g.shape(f"{b}.tokens_shape",
                                                                [0, tokens, d])], f"{b}.merge"))
    proj = self.point(f"{b}.proj", self.linear(f"{b}.proj", att))
    x = self.point(f"{b}.res1", g.op("Add", [x, proj], f"{b}.residual1"))
    y = self.point(f"{b}.ln2", self.layer_norm(f"{b}.ln2", x))
    f1 = self.point(f"{b}.fc1", self.linear(f"{b}.fc1", y))
    act = self.point(f"{b}.gelu", self.gelu(f"{b}.gelu", f1))
    f2 = self.point(f"{b}.fc2", self.linear(f"{b}.fc2", act))
    return self.point(f"{b}.res2", g.op("Add", [x, f2], f"{b}.residual2"))

  def model(self) -> onnx.ModelProto:
    g, c = self.g, self.c
    length = int(self.t["num_samples"])
    s = length // c.patch_size
    tokens, d = c.num_channels * s, c.embed_dim
    x = g.op("Reshape", [INPUT, g.shape("patch_shape", [0, tokens, c.patch_size])], "patches")
    x = self.point("embed", self.linear("embed", self.point("input", x)))
    rope = self.rope_tables(s) if c.rope_mode == "time" else None
    for i in range(c.num_layers):
      x = self.block(i, x, tokens, rope)
    grid = g.op("Reshape", [self.layer_norm("norm", x),
                            g.shape("grid_shape", [0, c.num_channels, s, d])], "grid")
    grid = self.point("norm", grid)
    if c.reduction == "concat":  # feature index c*D + d
      mean = g.op("ReduceMean", [grid, g.shape("pool_axes", [2])], "pool.mean", keepdims=0)
      pooled = g.op("Reshape", [mean, g.shape("pool_shape", [0, c.num_channels * d])],
                    "pool.flat")
    else:
      pooled = g.op("ReduceMean", [grid, g.shape("pool_axes", [1, 2])], "pool.mean",
                    keepdims=0)
    x = self.point("pool", pooled)
    self.point(OUTPUT, self.linear("head", x))  # the graph output is the dequantised point
    onnx_graph = helper.make_graph(
        g.nodes, "tinymyo_int8_qdq",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT,
                                       ["batch", c.num_channels, length])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", c.num_outputs])],
        initializer=g.inits)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="tinymyo_jax.export.gap9.qdq_onnx")
    model.ir_version = 10  # opset 21; readable by onnxruntime >= 1.20
    helper.set_model_props(model, {
        "recipe": self.qm.qcfg.label, "rope_mode": c.rope_mode, "reduction": c.reduction,
        "input_scale": repr(self.qm.scales["input"]),
        "logit_scale": repr(self.qm.scales["logits"]),
        "input": f"float32 [batch, {c.num_channels}, {length}], normalised as in training"})
    return model


def build(qm: QuantizedModel) -> onnx.ModelProto:
  """The QDQ ONNX model of `qm`, checked with `onnx.checker` (full check)."""
  model = _Exporter(qm).model()
  onnx.checker.check_model(model, full_check=True)
  return model


def save(model: onnx.ModelProto, path: str | Path) -> Path:
  """Writes the model atomically."""
  path = Path(path)
  with atomic_io.atomic_path(path, suffix=".onnx") as tmp:
    onnx.save(model, tmp)
  return path


def session(model: onnx.ModelProto | str | Path, threads: int = 1):
  """onnxruntime CPU session of a model (proto or file)."""
  import onnxruntime as ort
  opts = ort.SessionOptions()
  opts.intra_op_num_threads = threads
  opts.inter_op_num_threads = 1
  src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
  return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def predict(sess, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
  """Logits [N, K] of float windows [N, C, T] through an onnxruntime session."""
  outs = [sess.run([OUTPUT], {INPUT: np.asarray(x[i:i + batch_size], np.float32)})[0]
          for i in range(0, len(x), batch_size)]
  return np.concatenate(outs)


def main(argv=None):
  from export.gap9 import model_io
  from export.gap9.windows import load_windows
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  model_io.add_model_args(parser)
  parser.add_argument("--recipe", default="per_channel+percentile", choices=sorted(q.RECIPES))
  parser.add_argument("--out", required=True, help="output .onnx file")
  args = parser.parse_args(argv)
  params, config, spec = model_io.load_model_arg(args)
  x_cal, _ = load_windows("train", data_dir=args.data_dir, limit=args.calib, spec=spec,
                          zip_path=args.uci_zip)
  qm = q.quantize(params, config, x_cal, q.RECIPES[args.recipe])
  model = build(qm)
  save(model, args.out)
  points = sum(n.op_type == "QuantizeLinear" for n in model.graph.node)
  print(f"wrote {args.out}: opset {OPSET}, {len(model.graph.node)} nodes, {points} QDQ points, "
        f"recipe {qm.qcfg.label}, {len(x_cal)} calibration windows")


if __name__ == "__main__":
  main()
