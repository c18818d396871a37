"""Evaluation metrics of the downstream tasks, in plain numpy (no JAX, no scikit-learn).

Classification: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix (+ PNG).
Regression: MAE, RMSE and R^2 per joint and averaged. Recognition: CER/WER from an edit distance
and CTC decoding (greedy, prefix beam search). Seeds: mean and standard deviation of any metric
dict.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tinymyo_jax import atomic_io

# ----------------------------------------------------------------------------- classification


def _int_labels(values, name: str, num_classes: int) -> np.ndarray:
  array = np.asarray(values)
  if array.ndim != 1:
    raise ValueError(f"{name} must be a 1-D array of class ids, got shape {array.shape}")
  if array.size and not np.issubdtype(array.dtype, np.integer):
    if not np.all(array == np.round(array)):
      raise ValueError(f"{name} must hold integer class ids, got dtype {array.dtype}")
  array = array.astype(np.int64)
  bad = (array < 0) | (array >= num_classes)
  if bad.any():
    raise ValueError(f"{name} holds class id {int(array[bad][0])} outside 0..{num_classes - 1}")
  return array


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
  """Counts [K, K]: row = true class, column = predicted class."""
  t = _int_labels(y_true, "y_true", num_classes)
  p = _int_labels(y_pred, "y_pred", num_classes)
  if t.shape != p.shape:
    raise ValueError(f"y_true has {t.size} labels but y_pred has {p.size}")
  return np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes,
                                                                             num_classes)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
  return np.divide(num, den, out=np.zeros(num.shape, np.float64), where=den > 0)


def classification_metrics(y_true, y_pred, num_classes: int,
                           class_names: Sequence[str] | None = None) -> dict[str, Any]:
  """Accuracy, macro-F1, balanced accuracy, per-class scores and the confusion matrix.

  A class with no prediction has precision 0, one with no example has recall 0 (as scikit-learn
  with `zero_division=0`). Macro-F1 and balanced accuracy average over the classes that occur in
  y_true or y_pred, which equals scikit-learn's default label set.

  Args:
    y_true: [N] true class ids in 0..num_classes-1.
    y_pred: [N] predicted class ids.
    num_classes: K.
    class_names: K names (default "0".."K-1"); keys of `per_class`.

  Returns:
    {"accuracy", "macro_f1", "balanced_accuracy", "num_examples", "class_names",
     "per_class": {name: {"precision", "recall", "f1", "support"}}, "confusion": [[int]] (K x K,
     row = true class)}.
  """
  if num_classes < 1:
    raise ValueError(f"num_classes must be positive, got {num_classes}")
  names = [str(i) for i in range(num_classes)] if class_names is None else list(class_names)
  if len(names) != num_classes:
    raise ValueError(f"{len(names)} class names given for num_classes={num_classes}")
  if len(set(names)) != len(names):
    raise ValueError(f"class names are not unique: {names}")
  cm = confusion_matrix(y_true, y_pred, num_classes)
  total = int(cm.sum())
  if total == 0:
    raise ValueError("classification_metrics needs at least one example, got 0")
  tp = np.diag(cm).astype(np.float64)
  support = cm.sum(axis=1).astype(np.float64)
  predicted = cm.sum(axis=0).astype(np.float64)
  precision = _safe_ratio(tp, predicted)
  recall = _safe_ratio(tp, support)
  f1 = _safe_ratio(2 * precision * recall, precision + recall)
  present = (support > 0) | (predicted > 0)
  return {
      "accuracy": float(tp.sum() / total),
      "macro_f1": float(f1[present].mean()),
      "balanced_accuracy": float(recall[support > 0].mean()),
      "num_examples": total,
      "class_names": names,
      "per_class": {name: {"precision": float(precision[k]), "recall": float(recall[k]),
                           "f1": float(f1[k]), "support": int(support[k])}
                    for k, name in enumerate(names)},
      "confusion": cm.tolist(),
  }


def accuracy_by_group(y_true, y_pred, groups) -> dict[str, float]:
  """Accuracy within each group (e.g. per subject), keyed by the group id as a string.

  Cross-subject results hinge on single people (one test subject with a shifted armband can
  cost a third of the split), so the per-subject figures say what a mean hides.
  """
  y_true, y_pred, groups = (np.asarray(v).ravel() for v in (y_true, y_pred, groups))
  if not len(y_true) == len(y_pred) == len(groups):
    raise ValueError(f"accuracy_by_group needs equal lengths, got {len(y_true)} labels, "
                     f"{len(y_pred)} predictions, {len(groups)} group ids")
  return {str(int(g)): float((y_pred[groups == g] == y_true[groups == g]).mean())
          for g in np.unique(groups)}


def save_confusion_png(confusion, class_names: Sequence[str], path: str | os.PathLike,
                       title: str) -> str:
  """Draws a confusion matrix: colours = row-normalised rates, text = counts. Returns the path.

  The PNG is written to a temporary file next to `path` and renamed, so a failure never leaves a
  partial image behind. Uses matplotlib's Agg canvas directly (no pyplot, no global backend).
  """
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # local: heavy, only for plots
  from matplotlib.figure import Figure

  cm = np.asarray(confusion, dtype=np.int64)
  k = len(class_names)
  if cm.shape != (k, k):
    raise ValueError(f"confusion matrix has shape {cm.shape}, expected ({k}, {k}) for "
                     f"{k} class names")
  rates = _safe_ratio(cm.astype(np.float64), cm.sum(axis=1, keepdims=True).astype(np.float64))
  side = min(max(4.0, 0.45 * k + 2.0), 30.0)
  fig = Figure(figsize=(side + 1.0, side))
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
  fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
  font = max(4.0, min(10.0, 120.0 / k))
  for i in range(k):
    for j in range(k):
      if cm[i, j]:
        ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=font,
                color="white" if rates[i, j] > 0.5 else "black")
  ax.set_xticks(range(k), labels=list(class_names), rotation=90, fontsize=font)
  ax.set_yticks(range(k), labels=list(class_names), fontsize=font)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  ax.set_title(title)
  fig.tight_layout()
  path = os.fspath(path)
  with atomic_io.atomic_path(path, suffix=".png") as tmp:
    fig.savefig(tmp, format="png", dpi=100)
  return path


# ----------------------------------------------------------------------------- regression


def regression_metrics(y_true, y_pred, joint_names: Sequence[str] | None = None
                       ) -> dict[str, Any]:
  """MAE, RMSE and R^2 per joint (last axis) and their unweighted mean over joints.

  Every axis but the last is pooled (e.g. [N, L, K] windows x frames x joints, in degrees).
  R^2 = 1 - SS_res / SS_tot about the joint's pooled mean; a joint with SS_tot = 0 gets 1.0 when
  predicted exactly, else 0.0 (scikit-learn's `force_finite`).

  Returns:
    {"mae", "rmse", "r2", "num_values", "per_joint": {name: {"mae", "rmse", "r2"}}}.
  """
  t = np.asarray(y_true, dtype=np.float64)
  p = np.asarray(y_pred, dtype=np.float64)
  if t.shape != p.shape:
    raise ValueError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}")
  if t.ndim < 2 or t.size == 0:
    raise ValueError(f"regression arrays must be [..., joints] with at least one value, "
                     f"got shape {t.shape}")
  for name, array in (("y_true", t), ("y_pred", p)):
    if not np.isfinite(array).all():
      raise ValueError(f"{name} holds {int((~np.isfinite(array)).sum())} non-finite values")
  k = t.shape[-1]
  names = [f"joint{i}" for i in range(k)] if joint_names is None else list(joint_names)
  if len(names) != k:
    raise ValueError(f"{len(names)} joint names given for {k} joints")
  t = t.reshape(-1, k)
  p = p.reshape(-1, k)
  err = p - t
  mae = np.abs(err).mean(axis=0)
  rmse = np.sqrt((err ** 2).mean(axis=0))
  ss_res = (err ** 2).sum(axis=0)
  ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
  r2 = np.where(ss_tot > 0, 1.0 - _safe_ratio(ss_res, ss_tot), np.where(ss_res == 0, 1.0, 0.0))
  return {
      "mae": float(mae.mean()), "rmse": float(rmse.mean()), "r2": float(r2.mean()),
      "num_values": int(t.size),
      "per_joint": {name: {"mae": float(mae[j]), "rmse": float(rmse[j]), "r2": float(r2[j])}
                    for j, name in enumerate(names)},
  }


# ----------------------------------------------------------------------------- recognition


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
  """Levenshtein distance (unit-cost substitutions, insertions, deletions) between sequences."""
  if len(ref) < len(hyp):
    ref, hyp = hyp, ref
  previous = list(range(len(hyp) + 1))
  for i, r in enumerate(ref, start=1):
    current = [i]
    for j, h in enumerate(hyp, start=1):
      current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
    previous = current
  return previous[-1]


def error_rates(refs: Sequence[str], hyps: Sequence[str]) -> dict[str, float | int]:
  """Corpus-level character and word error rates.

  CER = sum of character edit distances / sum of reference lengths (spaces count as characters);
  WER = the same over whitespace-separated words. Texts are compared as given: normalise them
  first (e.g. `tinymyo_jax.speech_units.normalize_text`).

  Returns:
    {"cer", "wer", "char_errors", "chars", "word_errors", "words", "num_utterances"}.
  """
  if isinstance(refs, str) or isinstance(hyps, str):
    raise TypeError("error_rates takes sequences of strings, not a single string")
  if len(refs) != len(hyps):
    raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
  char_errors = chars = word_errors = words = 0
  for ref, hyp in zip(refs, hyps):
    char_errors += edit_distance(ref, hyp)
    chars += len(ref)
    ref_words, hyp_words = ref.split(), hyp.split()
    word_errors += edit_distance(ref_words, hyp_words)
    words += len(ref_words)
  if chars == 0 or words == 0:
    raise ValueError(f"references hold {chars} characters and {words} words; error rates are "
                     "undefined for empty references")
  return {"cer": char_errors / chars, "wer": word_errors / words, "char_errors": char_errors,
          "chars": chars, "word_errors": word_errors, "words": words,
          "num_utterances": len(refs)}


def _check_scores(scores, blank: int) -> np.ndarray:
  scores = np.asarray(scores, dtype=np.float64)
  if scores.ndim != 2:
    raise ValueError(f"CTC scores must be [time, vocab], got shape {scores.shape}")
  if not 0 <= blank < scores.shape[1]:
    raise ValueError(f"blank id {blank} is outside the vocabulary of size {scores.shape[1]}")
  return scores


def ctc_greedy_decode(logits, blank: int = 0) -> list[int]:
  """Best path: argmax per frame, merge repeats, drop blanks. logits [T, V] (or log-probs)."""
  best = _check_scores(logits, blank).argmax(axis=1)
  out, last = [], blank
  for token in best.tolist():
    if token != last and token != blank:
      out.append(token)
    last = token
  return out


def ctc_beam_search(log_probs, beam: int = 8, blank: int = 0) -> list[int]:
  """CTC prefix beam search without a language model; returns the most probable label sequence.

  Each prefix keeps two log-probabilities: paths ending in blank and paths ending in its last
  label, so that "a a" (repeat without blank) and "a _ a" are told apart. After every frame the
  `beam` most probable prefixes survive. With `beam` at least the number of possible prefixes the
  search is exact.

  Args:
    log_probs: [T, V] per-frame log-probabilities (log-softmax of the logits).
    beam: number of prefixes kept per frame.
    blank: the blank id.
  """
  lp = _check_scores(log_probs, blank)
  if beam < 1:
    raise ValueError(f"beam must be at least 1, got {beam}")
  neg_inf = -math.inf
  # prefix -> (log P(prefix, last frame blank), log P(prefix, last frame = prefix[-1]))
  beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, neg_inf)}
  for frame in lp:
    nxt: dict[tuple[int, ...], list[float]] = {}

    def add(prefix, blank_lp=neg_inf, label_lp=neg_inf):
      entry = nxt.setdefault(prefix, [neg_inf, neg_inf])  # noqa: B023 - used in this frame only
      entry[0] = np.logaddexp(entry[0], blank_lp)
      entry[1] = np.logaddexp(entry[1], label_lp)

    for prefix, (p_b, p_nb) in beams.items():
      total = np.logaddexp(p_b, p_nb)
      add(prefix, blank_lp=total + frame[blank])
      last = prefix[-1] if prefix else None
      for token in range(lp.shape[1]):
        if token == blank:
          continue
        if token == last:
          add(prefix, label_lp=p_nb + frame[token])            # repeat collapses
          add(prefix + (token,), label_lp=p_b + frame[token])  # repeat after a blank
        else:
          add(prefix + (token,), label_lp=total + frame[token])
    ranked = sorted(nxt.items(), key=lambda item: -np.logaddexp(*item[1]))
    beams = {prefix: (lps[0], lps[1]) for prefix, lps in ranked[:beam]}
  best = max(beams.items(), key=lambda item: np.logaddexp(*item[1]))
  return list(best[0])


# ----------------------------------------------------------------------------- seeds


def _is_number(x) -> bool:
  return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _aggregate(values: list, where: str):
  first = values[0]
  if isinstance(first, Mapping):
    keys = list(first)
    for v in values[1:]:
      if not isinstance(v, Mapping) or set(v) != set(keys):
        raise ValueError(f"metric dicts differ at {where or 'top level'}: keys {sorted(keys)} vs "
                         f"{sorted(v) if isinstance(v, Mapping) else type(v).__name__}")
    return {k: _aggregate([v[k] for v in values], f"{where}.{k}" if where else str(k))
            for k in keys}
  if _is_number(first) or (isinstance(first, (list, tuple)) and first
                           and all(_is_number(x) for x in np.ravel(np.asarray(first, object)))):
    try:
      array = np.asarray(values, dtype=np.float64)
    except ValueError as error:
      raise ValueError(f"metric {where!r} has different shapes across seeds") from error
    std = array.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(array.shape[1:])
    mean = array.mean(axis=0)
    return {"mean": mean.tolist() if mean.ndim else float(mean),
            "std": std.tolist() if std.ndim else float(std)}
  if any(v != first for v in values[1:]):
    raise ValueError(f"non-numeric metric {where!r} differs across seeds: {values}")
  return first


def mean_std_over_seeds(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  """Mean and sample standard deviation (ddof=1; 0 for one seed) of every numeric leaf.

  Each numeric leaf (number, or list of numbers such as a confusion matrix, element-wise)
  becomes {"mean": ..., "std": ...}; non-numeric leaves (class names) must agree across seeds
  and are kept as they are. Adds "num_seeds".
  """
  if not results:
    raise ValueError("mean_std_over_seeds needs at least one metric dict, got none")
  if not all(isinstance(r, Mapping) for r in results):
    raise TypeError("mean_std_over_seeds takes a list of metric dicts")
  out = _aggregate(list(results), "")
  out["num_seeds"] = len(results)
  return out
