"""Linear probing by logistic regression on a frozen encoder's features, layer by layer.

The encoder of a checkpoint (a fine-tuning or probe checkpoint of the task: its meta gives the
input normalization) runs once over the task's windows; after the patch embedding and after each
block, the residual stream goes through the encoder's final LayerNorm and the classification
head's pooling (channels side by side, mean over time: C x D numbers per window). A standardized
multinomial logistic regression is fit on the training split, its L2 strength chosen on the
validation split; test accuracy is reported beside, never used to choose. `--layers all` fits
every layer (and the mean of the last k layers' features) and names the one validation prefers;
`--layers last` fits the encoder's output only, the standard linear probe.

The last layer's probe is also written as a checkpoint (`<workdir>/head`): the input checkpoint
with the scaler and the regression folded into its linear head, so full fine-tuning can start
from the solved probe (LP-FT).

Usage (scikit-learn is the optional extra `sklearn`):
  python experiments/layer_probe.py --ckpt runs/x/cv/lp_fold0/seed_0/best --task uci_200hz,fold0 \
      --data_dir data/tfds_pre --workdir runs/x/cv/lr_fold0 [--layers all|last] [--overwrite]
A workdir with a summary.json is printed, not recomputed, unless --overwrite is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.classical_baselines import ROLES, scores, task_records  # noqa: E402
from tinymyo_jax import checkpointing, extras, input_pipeline, reporting  # noqa: E402
from tinymyo_jax.models.heads import tokens_to_grid  # noqa: E402
from tinymyo_jax.models.tinymyo import create_model  # noqa: E402

STRENGTHS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)  # LogisticRegression C, chosen on val.
LAST_K = (2, 4)  # also: the mean of the last k layers' features


def layer_features_fn(model, last_only: bool = False):
  """jit function: prepared windows [B, C, T] -> pooled features [L + 1, B, C * D] per layer
  ([1, B, C * D], the encoder's output, with `last_only`: a ninth of the memory)."""
  graphdef, state = nnx.split(model)

  def features(state, x_bct):
    m = nnx.merge(graphdef, state)
    channels = x_bct.shape[1]
    streams = list(m.residual_streams(x_bct))
    streams = streams[-1:] if last_only else streams
    return jnp.stack([tokens_to_grid(m.norm(s), channels).mean(axis=1) for s in streams])

  jitted = jax.jit(features)
  return lambda x: np.asarray(jitted(state, x))


def encode_split(fn, prepare, records, batch: int = 64, desc: str = "encoding"):
  """(features [L + 1, N, F], labels [N], subjects [N]) of random-access records."""
  feats, labels, subjects = [], [], []
  for start in tqdm(range(0, len(records), batch), desc=desc, unit="batch", leave=False):
    rows = [records[i] for i in range(start, min(start + batch, len(records)))]
    x = np.stack([prepare.map(r)["emg"] for r in rows])
    pad = batch - len(rows)   # one compiled shape
    out = fn(np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x)
    feats.append(out[:, :len(rows)])
    labels.extend(int(r["label"]) for r in rows)
    subjects.extend(int(r["subject"]) for r in rows)
  return np.concatenate(feats, axis=1), np.asarray(labels), np.asarray(subjects)


def fit_and_score(data: dict, num_classes: int):
  """Logistic regression on one feature set, C chosen on validation accuracy: (row, model)."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler
  best = None
  for c in STRENGTHS:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
    model.fit(data["train"][0], data["train"][1])
    val = float((model.predict(data["validation"][0]) == data["validation"][1]).mean())
    if best is None or val > best[0]:
      best = (val, c, model)
  val, c, model = best
  x, y, subjects = data["test"]
  return ({"C": c, "validation_accuracy": val,
           "test": scores(y, model.predict(x), subjects, num_classes)}, model)


def folded_head(model, num_classes: int) -> dict[str, np.ndarray]:
  """The classification head's {kernel [F, K], bias [K]} computing the standardized logistic
  regression's logits from raw pooled features (a class absent from training gets bias -30)."""
  scaler, regression = model[0], model[-1]
  coef, intercept = regression.coef_, regression.intercept_
  if coef.shape[0] == 1:  # two classes: sigmoid(z) == softmax(-z/2, z/2)
    coef, intercept = np.concatenate([-coef, coef]) / 2, np.array([-1, 1]) * intercept[0] / 2
  weight = coef / scaler.scale_
  kernel = np.zeros((coef.shape[1], num_classes), np.float32)
  bias = np.full((num_classes,), -30.0, np.float32)
  kernel[:, regression.classes_] = weight.T
  bias[regression.classes_] = intercept - weight @ scaler.mean_
  return {"kernel": kernel, "bias": bias}


def run(ckpt: str, task: str, data_dir: str, layers: str = "all"):
  """(summary, params with the last layer's probe as the head, model config, checkpoint meta)."""
  params, config, meta = checkpointing.load_params(ckpt)
  stats = (meta.get("input_stats") or [None])[0]
  prepare = input_pipeline.PrepareWindow(meta["data"]["normalization"], config.num_channels, (),
                                         stats)
  fn = layer_features_fn(create_model(config, params=params), last_only=layers == "last")
  records = task_records(task, data_dir)
  encoded = {role: encode_split(fn, prepare, records[role], desc=f"encoding {role}")
             for role in ROLES}
  num_layers = config.num_layers
  last = f"layer {num_layers}"
  feature_sets = {last: -1}   # the encoder's output is the last feature set either way
  if layers == "all":
    feature_sets = {f"layer {layer}": layer for layer in range(num_layers + 1)}
    feature_sets.update({f"mean of last {k}": slice(num_layers + 1 - k, None) for k in LAST_K
                         if k <= num_layers})
  rows = {}
  for name, index in feature_sets.items():
    data = {}
    for role, (feats, y, subjects) in encoded.items():
      x = feats[index]
      data[role] = (x.mean(axis=0) if x.ndim == 3 else x, y, subjects)
    rows[name], model = fit_and_score(data, config.num_outputs)
    if name == last:
      params = {**params, "head": {"classifier": folded_head(model, config.num_outputs)}}
    print(f"{name:>16}: val {100 * rows[name]['validation_accuracy']:.2f}%  "
          f"test {100 * rows[name]['test']['accuracy']:.2f}%  (C={rows[name]['C']})", flush=True)
  chosen = max(rows, key=lambda name: rows[name]["validation_accuracy"])
  summary = {"ckpt": ckpt, "task": task, "rows": rows, "chosen_on_validation": chosen,
             "test": rows[last]["test"], "validation_accuracy": rows[last]["validation_accuracy"],
             "C": rows[last]["C"]}
  return summary, params, config, meta


def main(argv: Sequence[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--ckpt", required=True, help="a fine-tuning or probe checkpoint of the task")
  p.add_argument("--task", required=True, help="a classification task of configs/finetune.py")
  p.add_argument("--data_dir", required=True, help="TFDS data_dir holding the task's build")
  p.add_argument("--workdir", required=True, help="folder for summary.json and the head checkpoint")
  p.add_argument("--layers", choices=("all", "last"), default="all",
                 help="probe every layer, or the encoder's output only")
  p.add_argument("--overwrite", action="store_true", help="recompute a finished workdir")
  a = p.parse_args(argv)
  summary_path = os.path.join(a.workdir, "summary.json")
  if os.path.exists(summary_path) and not a.overwrite:
    with open(summary_path, encoding="utf-8") as f:
      summary = json.load(f)
    print(f"done already: {a.workdir} (chosen on validation: {summary['chosen_on_validation']})")
    return 0
  if os.path.exists(summary_path):
    os.remove(summary_path)  # --overwrite: the workdir is unfinished until the new summary
  start = time.perf_counter()
  summary, params, config, meta = run(a.ckpt, a.task, a.data_dir, a.layers)
  summary["wall_s"] = round(time.perf_counter() - start, 1)
  head_dir = os.path.join(a.workdir, "head")
  shutil.rmtree(head_dir, ignore_errors=True)  # an unfinished earlier try (no summary.json)
  extra = {k: v for k, v in meta.items() if k not in ("model", "step", "progress")}
  checkpointing.save_params(head_dir, params, config,
                            extra_meta={**extra, "probe": {"C": summary["C"], "from": a.ckpt}})
  reporting.write_json_atomic(summary_path, summary)  # last: marks the workdir finished
  print(f"chosen on validation: {summary['chosen_on_validation']}; wrote {a.workdir}")
  return 0


if __name__ == "__main__":
  sys.exit(extras.run_cli(main))
