"""Analytical GAP9 cost model of the tiled schedule: cycles, latency, energy, bytes per level.

`python -m export.gap9.cost --ckpt DIR --channels 8 --samples 1000 [--plot scaling.png]`
(or `--variant tiny` without a checkpoint). Every throughput figure is an assumption listed in
`Assumptions`; the README says which ones dominate.
"""

from __future__ import annotations

import argparse
import dataclasses

from export.gap9 import plan as plan_lib
from tinymyo_jax.models.tinymyo import ModelConfig, decode_variant

PAPER = dict(latency_s=0.785, energy_mj=44.91, power_mw=57.18)


@dataclasses.dataclass(frozen=True)
class Assumptions:
  """Per-kernel throughput of the GAP9 cluster (8 compute cores, INT8 SIMD) and memories."""

  freq_hz: float = 370e6  # GAP9 cluster maximum frequency
  power_w: float = 57.18e-3  # average SoC power during inference (TinyMyo paper, measured)
  linear_macs_per_cycle: float = 10.0  # 8 cores x 4-way sdotp = 32 peak; ~31 % with requant
  attention_macs_per_cycle: float = 4.0  # q.k over Dh=64 and uint8 P.V: strided, int32 scores
  softmax_cycles_per_elem: float = 20.0  # per core: max, LUT exp, sum, reciprocal, scale
  layernorm_cycles_per_elem: float = 12.0  # per core: two passes, 64-bit multiply, division/token
  elementwise_cycles_per_elem: float = 3.0  # per core: add with two multipliers, LUT, RoPE
  cores: int = 8
  l2_l1_bytes_per_cycle: float = 8.0  # cluster DMA, 64-bit
  l3_l2_bytes_per_cycle: float = 200e6 / 370e6  # HyperRAM ~200 MB/s at the cluster clock
  tile_overhead_cycles: float = 400.0  # DMA programming, fork/barrier per tile
  layer_overhead_cycles: float = 5000.0  # fabric controller: offload, slab switch per op


def op_cycles(op: plan_lib.Op, a: Assumptions) -> dict:
  """{compute, dma_l1, dma_l3, overhead, total} cycles of one op."""
  s = op.shape
  if op.kind == "linear":
    compute = op.macs / a.linear_macs_per_cycle
    tiles = -(-s["n"] // op.tile["tn"]) * -(-s["m"] // op.tile["tm"])
    l1_bytes = s["n"] * s["k"] * -(-s["m"] // op.tile["tm"]) + s["n"] * s["m"] * s["out_bytes"]
  elif op.kind == "attention":
    softmax = s["heads"] * s["n"] ** 2 * a.softmax_cycles_per_elem / a.cores
    compute = op.macs / a.attention_macs_per_cycle + softmax
    tiles = s["heads"] * -(-s["n"] // op.tile["tq"])
    l1_bytes = 3 * s["n"] * s["d"] + s["n"] * s["d"]
  elif op.kind == "layernorm":
    compute = s["n"] * s["d"] * a.layernorm_cycles_per_elem / a.cores
    tiles = -(-s["n"] // op.tile["tn"])
    l1_bytes = 2 * s["n"] * s["d"]
  else:  # add, lut, rope, pool: elementwise
    elems = s.get("len", s.get("n", 0) * s.get("d", 0) * 2)
    compute = elems * a.elementwise_cycles_per_elem / a.cores
    tiles = max(1, -(-elems // max(1, next(iter(op.tile.values()), elems))))
    l1_bytes = 2 * elems
  dma_l1 = l1_bytes / a.l2_l1_bytes_per_cycle
  dma_l3 = op.weight_bytes / a.l3_l2_bytes_per_cycle
  overhead = tiles * a.tile_overhead_cycles + a.layer_overhead_cycles
  # double buffering hides the smaller of compute and transfers; the weight slab of this layer
  # is prefetched while the previous layer computes, so L3 time also overlaps with compute
  total = max(compute, dma_l1, dma_l3) + overhead
  return dict(compute=compute, dma_l1=dma_l1, dma_l3=dma_l3, overhead=overhead, total=total,
              l2_l1_bytes=l1_bytes, l3_bytes=op.weight_bytes)


def estimate(plan: plan_lib.Plan, a: Assumptions = Assumptions()) -> dict:
  """Totals over the schedule plus per-kind cycle shares."""
  per_kind, total = {}, dict(cycles=0.0, macs=0, l2_l1_bytes=0, l3_bytes=0, nonlinear=0)
  for op in plan.ops:
    c = op_cycles(op, a)
    per_kind[op.kind] = per_kind.get(op.kind, 0.0) + c["total"]
    total["cycles"] += c["total"]
    total["macs"] += op.macs
    total["l2_l1_bytes"] += c["l2_l1_bytes"]
    total["l3_bytes"] += c["l3_bytes"]
    total["nonlinear"] += op.nonlinear_elems
  latency = total["cycles"] / a.freq_hz
  return dict(total, latency_s=latency, energy_mj=latency * a.power_w * 1e3,
              macs_per_cycle=total["macs"] / total["cycles"], per_kind=per_kind,
              l2_peak=plan.l2_peak, l1_peak=max(op.l1_bytes for op in plan.ops))


def scaling(config: ModelConfig, channels=(4, 8, 16), samples=(200, 1000),
            a: Assumptions = Assumptions()) -> list[dict]:
  rows = []
  for t in samples:
    for c in channels:
      cfg = dataclasses.replace(config, num_channels=c)
      try:
        r = estimate(plan_lib.make_plan(cfg, t), a)
        rows.append(dict(channels=c, samples=t, tokens=c * t // cfg.patch_size, **r))
      except plan_lib.PlanError as err:
        rows.append(dict(channels=c, samples=t, tokens=c * t // cfg.patch_size, error=str(err)))
  return rows


def format_report(r: dict, a: Assumptions) -> str:
  lines = [f"MACs {r['macs']:,}  cycles {r['cycles']:,.0f}  ({r['macs_per_cycle']:.2f} MAC/cycle)",
           f"latency {r['latency_s'] * 1e3:.1f} ms at {a.freq_hz / 1e6:.0f} MHz  "
           f"energy {r['energy_mj']:.2f} mJ at {a.power_w * 1e3:.2f} mW",
           f"paper: {PAPER['latency_s'] * 1e3:.0f} ms, {PAPER['energy_mj']} mJ -> latency "
           f"{(r['latency_s'] / PAPER['latency_s'] - 1) * 100:+.1f} %, energy "
           f"{(r['energy_mj'] / PAPER['energy_mj'] - 1) * 100:+.1f} %",
           f"bytes: L3->L2 {r['l3_bytes']:,}  L2<->L1 {r['l2_l1_bytes']:,}  "
           f"peaks: L2 {r['l2_peak']:,}  L1 {r['l1_peak']:,}; non-linear elements "
           f"{r['nonlinear']:,}", "", "| kind | cycles | share |", "|---|---:|---:|"]
  for kind, cyc in sorted(r["per_kind"].items(), key=lambda kv: -kv[1]):
    lines.append(f"| {kind} | {cyc:,.0f} | {cyc / r['cycles'] * 100:.1f} % |")
  return "\n".join(lines)


def format_scaling(rows: list[dict]) -> str:
  lines = ["| channels | samples | tokens | MACs | latency (ms) | energy (mJ) | L2 peak (B) |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    if "error" in r:
      lines.append(f"| {r['channels']} | {r['samples']} | {r['tokens']} | - | does not fit | - "
                   f"| - |")
    else:
      lines.append(f"| {r['channels']} | {r['samples']} | {r['tokens']} | {r['macs']:,} | "
                   f"{r['latency_s'] * 1e3:.1f} | {r['energy_mj']:.2f} | {r['l2_peak']:,} |")
  return "\n".join(lines)


def plot_scaling(rows: list[dict], path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
  for t in sorted({r["samples"] for r in rows}):
    sel = [r for r in rows if r["samples"] == t and "error" not in r]
    ch = [r["channels"] for r in sel]
    axes[0].plot(ch, [r["latency_s"] * 1e3 for r in sel], "o-", label=f"{t} samples")
    axes[1].plot(ch, [r["energy_mj"] for r in sel], "o-", label=f"{t} samples")
  for ax, label in zip(axes, ("latency (ms)", "energy (mJ)")):
    ax.set_xlabel("channels")
    ax.set_ylabel(label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
  fig.suptitle("TinyMyo INT8 on GAP9: cost-model estimate")
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--ckpt", help="checkpoint dir (its ModelConfig is used)")
  parser.add_argument("--variant", default="tiny", help="model variant when no --ckpt")
  parser.add_argument("--channels", type=int, default=8)
  parser.add_argument("--samples", type=int, default=1000)
  parser.add_argument("--classes", type=int, default=6)
  parser.add_argument("--freq_mhz", type=float, default=370.0)
  parser.add_argument("--power_mw", type=float, default=PAPER["power_mw"])
  parser.add_argument("--plot", help="write the channels x samples scaling plot (PNG) here")
  args = parser.parse_args(argv)
  if args.ckpt:
    from tinymyo_jax.checkpointing import load_params
    _, config, _ = load_params(args.ckpt)
  else:
    config = decode_variant(args.variant, head="classification", num_outputs=args.classes,
                            rope_mode="released")
  config = dataclasses.replace(config, num_channels=args.channels)
  a = Assumptions(freq_hz=args.freq_mhz * 1e6, power_w=args.power_mw * 1e-3)
  print(format_report(estimate(plan_lib.make_plan(config, args.samples), a), a))
  rows = scaling(config, a=a)
  print("\n" + format_scaling(rows))
  if args.plot:
    plot_scaling(rows, args.plot)
    print(f"wrote {args.plot}")


if __name__ == "__main__":
  main()
