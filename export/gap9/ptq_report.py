"""The PTQ accuracy table: fp32 vs each INT8 recipe (fake-quant) and the integer reference.

  python -m export.gap9.ptq_report --ckpt CKPT [--data_dir TFDS_DIR] [--out quant.npz]
"""

from __future__ import annotations

import argparse

from export.gap9 import int_reference, model_io
from export.gap9 import quantize as q
from export.gap9.windows import load_windows


def accuracy_table(params, config, x_cal, x_test, y_test, recipes=q.RECIPES,
                   with_integer: str | None = "per_channel+percentile") -> list[dict]:
  """Rows {recipe, accuracy, drop_pp, agreement_vs_fp32} on the test windows."""
  fp = q.predict(q.float_forward(params, config), x_test, desc="fp32").argmax(-1)
  base = float((fp == y_test).mean() * 100)
  rows = [{"recipe": "fp32", "accuracy": base, "drop_pp": 0.0, "agree_fp32": 100.0}]
  for name, qcfg in recipes.items():
    qm = q.quantize(params, config, x_cal, qcfg)
    pred = q.predict(q.fake_quant_forward(qm, params), x_test, desc=name).argmax(-1)
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


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  model_io.add_model_args(parser)
  parser.add_argument("--out", help="write the chosen recipe's quantised model (.npz) here")
  parser.add_argument("--recipe", default="per_channel+percentile", choices=sorted(q.RECIPES))
  args = parser.parse_args(argv)
  params, config, spec = model_io.load_model_arg(args)
  x_cal, _ = load_windows("train", data_dir=args.data_dir, limit=args.calib, spec=spec,
                          zip_path=args.uci_zip)
  x_test, y_test = load_windows("test", data_dir=args.data_dir, limit=args.test_limit, spec=spec,
                                zip_path=args.uci_zip)
  print(f"model {config}\ninput {spec}\ncalibration windows {len(x_cal)} (train), "
        f"test windows {len(x_test)}")
  rows = accuracy_table(params, config, x_cal, x_test, y_test, with_integer=args.recipe)
  print(format_table(rows))
  if args.out:
    q.quantize(params, config, x_cal, q.RECIPES[args.recipe]).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
