"""Deployment plan: the op list, liveness-based L2 arena, L3 weight streaming and L1 tiling.

Pure Python on the model shapes; `codegen.py` emits C from it and `cost.py` prices it.
"""

from __future__ import annotations

import dataclasses

from tinymyo_jax.models.tinymyo import ModelConfig

L1_BYTES = 104 * 1024  # usable share of the 128 kB cluster TCDM (stack and runtime take the rest)
L2_BYTES = 1536 * 1024
L2_RESERVED = 256 * 1024  # code, stacks and the runtime
ALIGN = 4


class PlanError(ValueError):
  """The model cannot be laid out in the given memories."""


@dataclasses.dataclass
class Op:
  name: str
  kind: str  # linear | layernorm | rope | attention | add | lut | pool
  ins: tuple
  out: str
  shape: dict  # kind-specific sizes (n, k, m, d, ...)
  inplace: bool = False
  tile: dict = dataclasses.field(default_factory=dict)
  l1_bytes: int = 0
  weight_bytes: int = 0  # streamed from L3 (linear layers)

  @property
  def macs(self) -> int:
    s = self.shape
    if self.kind == "linear":
      return s["n"] * s["k"] * s["m"]
    if self.kind == "attention":
      return 2 * s["n"] * s["n"] * s["d"]
    if self.kind == "pool":
      return 0
    return 0

  @property
  def nonlinear_elems(self) -> int:
    s = self.shape
    return {"layernorm": s.get("n", 0) * s.get("d", 0), "attention": s["heads"] * s["n"] ** 2
            if self.kind == "attention" else 0, "lut": s.get("len", 0),
            "add": s.get("len", 0), "rope": s.get("n", 0) * s.get("d", 0) * 2,
            "pool": s.get("len", 0)}.get(self.kind, 0)


@dataclasses.dataclass
class Plan:
  config: ModelConfig
  num_samples: int
  ops: list
  buffers: dict  # name -> (bytes, offset, first op, last op)
  arena_bytes: int
  slab_bytes: int
  weights_l3_bytes: int
  const_bytes: int
  l1_bytes: int
  l2_budget: int
  stream_weights: bool

  @property
  def l2_peak(self) -> int:
    slabs = 2 * self.slab_bytes if self.stream_weights else self.weights_l3_bytes
    return self.arena_bytes + slabs + self.const_bytes

  def table(self) -> str:
    """Human-readable plan: buffers with offsets, tiles per op, peak bytes per level."""
    lines = ["| buffer | bytes | L2 offset | live ops |", "|---|---:|---:|---|"]
    for name, (size, off, first, last) in self.buffers.items():
      lines.append(f"| {name} | {size} | {off} | {first}..{last} |")
    lines += ["", "| # | op | kind | tile | L1 bytes | weights (L3->L2) | MACs |",
              "|---:|---|---|---|---:|---:|---:|"]
    for i, op in enumerate(self.ops):
      tile = " ".join(f"{k}={v}" for k, v in op.tile.items())
      lines.append(f"| {i} | {op.name} | {op.kind} | {tile} | {op.l1_bytes} | "
                   f"{op.weight_bytes} | {op.macs} |")
    weights = (f"2 weight slabs of {self.slab_bytes}" if self.stream_weights
               else "resident weights")
    lines += ["", f"L1 peak {max(o.l1_bytes for o in self.ops)} B of {self.l1_bytes} B; "
              f"L2 peak {self.l2_peak} B of {self.l2_budget} B (arena {self.arena_bytes}, "
              f"{weights}"
              f", constants {self.const_bytes}); L3 weights {self.weights_l3_bytes} B"]
    return "\n".join(lines)


def build_ops(config: ModelConfig, num_samples: int) -> tuple[list, dict]:
  """Op list and buffer sizes (bytes) of the classifier for windows of num_samples."""
  c = config
  s = num_samples // c.patch_size
  n, d = c.num_channels * s, c.embed_dim
  f = int(d * c.mlp_ratio)
  sizes = {"input": c.num_channels * num_samples}
  ops = []

  def add(op, size=None):
    ops.append(op)
    if size is not None:
      sizes[op.out] = size

  def linear(name, x, k, m, rows=n, out_bytes=1):
    add(Op(name, "linear", (x,), name, dict(n=rows, k=k, m=m, out_bytes=out_bytes),
           weight_bytes=m * k + 9 * m), rows * m * out_bytes)

  linear("embed", "input", c.patch_size, d)
  x = "embed"
  for i in range(c.num_layers):
    b = f"b{i}"
    add(Op(f"{b}.ln1", "layernorm", (x,), f"{b}.ln1", dict(n=n, d=d)), n * d)
    linear(f"{b}.qkv", f"{b}.ln1", d, 3 * d)
    if c.rope_mode == "time":
      add(Op(f"{b}.qkv_rot", "rope", (f"{b}.qkv",), f"{b}.qkv", dict(n=n, d=d, s=s,
                                                                      heads=c.num_heads),
             inplace=True))
    add(Op(f"{b}.attn", "attention", (f"{b}.qkv",), f"{b}.attn",
           dict(n=n, d=d, heads=c.num_heads)), n * d)
    linear(f"{b}.proj", f"{b}.attn", d, d)
    add(Op(f"{b}.res1", "add", (x, f"{b}.proj"), f"{b}.res1", dict(len=n * d)), n * d)
    add(Op(f"{b}.ln2", "layernorm", (f"{b}.res1",), f"{b}.ln2", dict(n=n, d=d)), n * d)
    linear(f"{b}.fc1", f"{b}.ln2", d, f)
    add(Op(f"{b}.gelu", "lut", (f"{b}.fc1",), f"{b}.fc1", dict(len=n * f), inplace=True))
    linear(f"{b}.fc2", f"{b}.fc1", f, d)
    add(Op(f"{b}.res2", "add", (f"{b}.res1", f"{b}.fc2"), f"{b}.res2", dict(len=n * d)), n * d)
    x = f"{b}.res2"
  add(Op("norm", "layernorm", (x,), "norm", dict(n=n, d=d)), n * d)
  groups = c.num_channels if c.reduction == "concat" else 1
  add(Op("pool", "pool", ("norm",), "pool", dict(groups=groups, per_group=n // groups, d=d,
                                                 len=n * d)), groups * d)
  linear("head", "pool", groups * d, c.num_outputs, rows=1, out_bytes=2)
  return ops, sizes


def _align(v: int) -> int:
  return (v + ALIGN - 1) // ALIGN * ALIGN


def allocate(ops: list, sizes: dict) -> tuple[dict, int]:
  """First-fit static arena from buffer lifetimes (an in-place op extends its buffer's life)."""
  first, last = {"input": 0}, {"input": 0}
  for i, op in enumerate(ops):
    for name in op.ins:
      last[name] = i
    first.setdefault(op.out, i)
    last[op.out] = max(last.get(op.out, i), i)
  last[ops[-1].out] = len(ops)  # the result is read back after the network
  placed, result = [], {}
  for name in sorted(sizes, key=lambda b: (first[b], -sizes[b])):
    size = _align(sizes[name])
    offset = 0
    for other_off, other_size, a, z in sorted(placed):
      overlap_time = not (z < first[name] or last[name] < a)
      if overlap_time and offset < other_off + other_size and other_off < offset + size:
        offset = _align(other_off + other_size)
    # one pass over offset-sorted blocks can miss a later conflict: re-check until stable
    while any(not (z < first[name] or last[name] < a) and offset < o + sz and o < offset + size
              for o, sz, a, z in placed):
      offset = _align(max(o + sz for o, sz, a, z in placed
                          if not (z < first[name] or last[name] < a)
                          and offset < o + sz and o < offset + size))
    placed.append((offset, size, first[name], last[name]))
    result[name] = (sizes[name], offset, first[name], last[name])
  return result, max(o + s for o, s, _, _ in placed)


def tile_op(op: Op, l1: int) -> None:
  """Chooses the op's L1 tile (fills op.tile and op.l1_bytes) or raises PlanError."""
  s = op.shape
  if op.kind == "linear":
    k, m, ob = s["k"], s["m"], s["out_bytes"]
    tm = m
    while tm > 1 and _align(tm * k) + 9 * tm + 12 > l1 // 2:
      tm = (tm + 1) // 2
    wbytes = _align(tm * k) + 8 * tm + _align(tm)
    tn = min(s["n"], (l1 - wbytes) // (2 * k + tm * ob)) if l1 > wbytes else 0
    need = wbytes + tn * (2 * k + tm * ob)
    op.tile = dict(tn=tn, tm=tm)
  elif op.kind == "layernorm":
    tn = min(s["n"], l1 // (2 * s["d"]))
    need = tn * 2 * s["d"]
    op.tile = dict(tn=tn)
  elif op.kind == "attention":
    dh = s["d"] // s["heads"]
    kv = 2 * s["n"] * dh
    tn = min(s["n"], max(0, (l1 - kv - 4) // (2 * dh + 4 * s["n"])))
    need = kv + tn * (2 * dh + 4 * s["n"]) + 4
    op.tile = dict(tq=tn)
  elif op.kind in ("add", "lut"):
    per = 2 if op.kind == "add" else 1
    tn = min(s["len"], l1 // per)
    need = tn * per
    op.tile = dict(te=tn)
  elif op.kind == "pool":
    tn = min(s["per_group"], (l1 - 4 * s["d"]) // s["d"])
    need = 4 * s["d"] + tn * s["d"]
    op.tile = dict(tn=tn)
  elif op.kind == "rope":
    tn, need = s["n"], 0  # in place in L2 (elementwise, cheap)
  else:
    raise PlanError(f"unsupported operator kind {op.kind!r} in layer {op.name!r}")
  if tn < 1:
    raise PlanError(f"layer {op.name!r} ({op.kind}, shape {s}) cannot be tiled into "
                    f"{l1} B of L1")
  op.l1_bytes = need


def make_plan(config: ModelConfig, num_samples: int, *, l1_bytes: int = L1_BYTES,
              l2_bytes: int = L2_BYTES, l2_reserved: int = L2_RESERVED,
              const_bytes: int = 0) -> Plan:
  """Full plan, or PlanError naming the layer and the byte counts that do not fit."""
  if num_samples % config.patch_size:
    raise PlanError(f"window of {num_samples} samples is not a multiple of the patch size "
                    f"{config.patch_size}")
  ops, sizes = build_ops(config, num_samples)
  for op in ops:
    tile_op(op, l1_bytes)
  buffers, arena = allocate(ops, sizes)
  weights = sum(op.weight_bytes for op in ops)
  big = max((op for op in ops if op.weight_bytes), key=lambda o: o.weight_bytes)
  slab = _align(big.weight_bytes) + 16
  budget = l2_bytes - l2_reserved
  stream = arena + weights + const_bytes > budget
  plan = Plan(config, num_samples, ops, buffers, arena, slab, weights, const_bytes, l1_bytes,
              budget, stream)
  if plan.l2_peak > budget:
    raise PlanError(
        f"model does not fit L2 even with L3 weight streaming: activation arena {arena} B + "
        f"2 weight slabs x {slab} B (largest layer {big.name!r}) + constants {const_bytes} B = "
        f"{plan.l2_peak} B > {budget} B usable ({l2_bytes} B L2 - {l2_reserved} B reserved)")
  return plan
