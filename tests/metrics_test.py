"""Metrics against hand-computed values (no scikit-learn in the project)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from tinymyo_jax import metrics

# ----------------------------------------------------------------------------- classification


def test_classification_hand_computed():
  # true: 0 0 0 1 1 2 ; pred: 0 0 1 1 2 2
  out = metrics.classification_metrics([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], 3,
                                       class_names=["a", "b", "c"])
  assert out["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
  assert out["accuracy"] == pytest.approx(4 / 6)
  # a: P=2/2 R=2/3 F1=0.8 ; b: P=1/2 R=1/2 F1=0.5 ; c: P=1/2 R=1 F1=2/3
  assert out["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8,
                                                 "support": 3})
  assert out["per_class"]["b"]["f1"] == pytest.approx(0.5)
  assert out["per_class"]["c"]["f1"] == pytest.approx(2 / 3)
  assert out["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
  assert out["balanced_accuracy"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
  assert out["num_examples"] == 6
  json.dumps(out)  # plain Python types only


def test_classification_absent_class_is_left_out_of_macro_scores():
  # Class 3 never occurs (neither true nor predicted); class 2 is predicted but never true.
  out = metrics.classification_metrics([0, 1, 1], [0, 1, 2], 4)
  assert out["per_class"]["2"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
  assert out["per_class"]["3"]["support"] == 0
  # F1: class0 = 1, class1 = 2*1*0.5/1.5 = 2/3, class2 = 0 -> mean over the 3 present classes.
  assert out["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
  assert out["balanced_accuracy"] == pytest.approx((1 + 0.5) / 2)


def test_classification_perfect_and_errors():
  out = metrics.classification_metrics(np.arange(5), np.arange(5), 5)
  assert out["accuracy"] == 1.0 and out["macro_f1"] == 1.0
  with pytest.raises(ValueError, match="class id 5 outside 0..4"):
    metrics.classification_metrics([0, 5], [0, 1], 5)
  with pytest.raises(ValueError, match="3 labels but y_pred has 2"):
    metrics.classification_metrics([0, 1, 2], [0, 1], 3)
  with pytest.raises(ValueError, match="2 class names given for num_classes=3"):
    metrics.classification_metrics([0], [0], 3, class_names=["a", "b"])
  with pytest.raises(ValueError, match="at least one example"):
    metrics.classification_metrics([], [], 3)


def test_confusion_png(tmp_path):
  cm = [[5, 1, 0], [2, 7, 1], [0, 0, 9]]
  path = metrics.save_confusion_png(cm, ["rest", "fist", "flex"], tmp_path / "cm.png", "test")
  data = (tmp_path / "cm.png").read_bytes()
  assert path == str(tmp_path / "cm.png")
  assert data[:8] == b"\x89PNG\r\n\x1a\n"
  width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
  assert (width, height) == (500, 400)  # figsize (5, 4) at 100 dpi
  assert [p.name for p in tmp_path.iterdir()] == ["cm.png"]  # no temp file left behind
  with pytest.raises(ValueError, match=r"shape \(3, 3\), expected \(2, 2\)"):
    metrics.save_confusion_png(cm, ["a", "b"], tmp_path / "bad.png", "bad")
  assert not (tmp_path / "bad.png").exists()


# ----------------------------------------------------------------------------- regression


def test_regression_hand_computed():
  # 2 windows x 2 frames x 2 joints. Joint 0: true 0,1,2,3 pred 1,1,2,5 -> errors 1,0,0,2.
  # Joint 1: true = pred = 10 everywhere (constant target, perfect prediction).
  t = np.array([[[0, 10], [1, 10]], [[2, 10], [3, 10]]], np.float64)
  p = np.array([[[1, 10], [1, 10]], [[2, 10], [5, 10]]], np.float64)
  out = metrics.regression_metrics(t, p, joint_names=["wrist", "thumb"])
  j0 = out["per_joint"]["wrist"]
  assert j0["mae"] == pytest.approx(0.75)
  assert j0["rmse"] == pytest.approx(math.sqrt(5 / 4))
  assert j0["r2"] == pytest.approx(1 - 5 / 5)  # SS_tot = 2.25+0.25+0.25+2.25 = 5, SS_res = 5
  assert out["per_joint"]["thumb"] == {"mae": 0.0, "rmse": 0.0, "r2": 1.0}
  assert out["mae"] == pytest.approx(0.375)
  assert out["rmse"] == pytest.approx(math.sqrt(1.25) / 2)
  assert out["r2"] == pytest.approx(0.5)
  assert out["num_values"] == 8


def test_regression_r2_of_mean_prediction_is_zero_and_errors():
  rng = np.random.default_rng(0)
  t = rng.normal(size=(50, 3))
  out = metrics.regression_metrics(t, np.broadcast_to(t.mean(axis=0), t.shape))
  assert out["r2"] == pytest.approx(0.0, abs=1e-12)
  with pytest.raises(ValueError, match=r"shape \(2, 3\) but y_pred has shape \(2, 2\)"):
    metrics.regression_metrics(np.zeros((2, 3)), np.zeros((2, 2)))
  with pytest.raises(ValueError, match="1 non-finite"):
    metrics.regression_metrics(np.zeros((2, 3)), np.array([[0, 0, np.nan], [0, 0, 0]]))


# ----------------------------------------------------------------------------- text


def test_edit_distance_known_values():
  assert metrics.edit_distance("kitten", "sitting") == 3
  assert metrics.edit_distance("", "abc") == 3
  assert metrics.edit_distance("abc", "") == 3
  assert metrics.edit_distance("flaw", "lawn") == 2
  assert metrics.edit_distance(["the", "cat"], ["the", "cat"]) == 0


def test_error_rates_corpus_level():
  refs = ["the cat sat", "hello world"]
  hyps = ["the bat sat down", ""]
  out = metrics.error_rates(refs, hyps)
  # chars: "the cat sat"->"the bat sat down": 1 sub + 5 ins = 6; "hello world"->"": 11 deletions.
  assert (out["char_errors"], out["chars"]) == (17, 22)
  assert out["cer"] == pytest.approx(17 / 22)
  # words: 1 sub + 1 ins = 2; 2 deletions.
  assert (out["word_errors"], out["words"]) == (4, 5)
  assert out["wer"] == pytest.approx(0.8)
  assert metrics.error_rates(["a b"], ["a b"])["wer"] == 0.0
  with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
    metrics.error_rates(["a", "b"], ["a"])
  with pytest.raises(ValueError, match="empty references"):
    metrics.error_rates([""], ["x"])


# ----------------------------------------------------------------------------- CTC decoding


def _log_softmax(x):
  x = np.asarray(x, np.float64)
  return x - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)) - x.max(
      1, keepdims=True)


def test_greedy_decode_merges_repeats_and_drops_blanks():
  # best path: 1 1 0 1 2 2 0 0 -> 1 1 2
  path = [1, 1, 0, 1, 2, 2, 0, 0]
  logits = np.full((len(path), 3), -5.0)
  logits[np.arange(len(path)), path] = 5.0
  assert metrics.ctc_greedy_decode(logits) == [1, 1, 2]
  assert metrics.ctc_greedy_decode(np.eye(3)[[0, 0, 0]]) == []  # all blank
  assert metrics.ctc_greedy_decode(np.eye(3)[[2, 2, 1]], blank=2) == [1]  # blank elsewhere


def test_beam_search_beats_greedy_on_hand_case():
  # P(blank)=0.6, P(a)=0.4 at both frames. Greedy: "" (p=0.36). Label "a": 0.4*0.6 + 0.6*0.4
  # + 0.4*0.4 = 0.64, so the exact answer is [1].
  lp = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
  assert metrics.ctc_greedy_decode(lp) == []
  assert metrics.ctc_beam_search(lp, beam=4) == [1]
  assert metrics.ctc_beam_search(np.log(np.array([[0.9, 0.1]] * 3))) == []  # all blank


def _brute_force_best(lp, blank=0):
  scores = {}
  for path in itertools.product(range(lp.shape[1]), repeat=lp.shape[0]):
    labels = tuple(metrics.ctc_greedy_decode(np.eye(lp.shape[1])[list(path)], blank))
    p = lp[np.arange(lp.shape[0]), path].sum()
    scores[labels] = np.logaddexp(scores.get(labels, -np.inf), p)
  return max(scores.items(), key=lambda item: item[1])[0]


@pytest.mark.parametrize("seed", range(6))
def test_beam_search_is_exact_with_a_wide_beam(seed):
  rng = np.random.default_rng(seed)
  lp = _log_softmax(rng.normal(scale=1.5, size=(5, 3)))
  assert tuple(metrics.ctc_beam_search(lp, beam=64)) == _brute_force_best(lp)


def test_beam_search_repeated_label_needs_blank():
  # Frames a, blank, a -> "a a"; frames a, a -> "a".
  eye = np.log(np.clip(np.eye(3), 1e-9, None))
  assert metrics.ctc_beam_search(eye[[1, 0, 1]]) == [1, 1]
  assert metrics.ctc_beam_search(eye[[1, 1]]) == [1]
  with pytest.raises(ValueError, match="blank id 5 is outside the vocabulary of size 3"):
    metrics.ctc_beam_search(eye, blank=5)


# ----------------------------------------------------------------------------- seeds


def test_mean_std_over_seeds():
  runs = [metrics.classification_metrics([0, 1, 1], p, 2, ["x", "y"])
          for p in ([0, 1, 1], [0, 1, 0], [1, 1, 0])]
  out = metrics.mean_std_over_seeds(runs)
  accs = [1.0, 2 / 3, 1 / 3]
  assert out["accuracy"]["mean"] == pytest.approx(np.mean(accs))
  assert out["accuracy"]["std"] == pytest.approx(np.std(accs, ddof=1))
  assert out["per_class"]["x"]["support"] == {"mean": 1.0, "std": 0.0}
  np.testing.assert_allclose(out["confusion"]["mean"], [[2 / 3, 1 / 3], [2 / 3, 4 / 3]])
  assert out["class_names"] == ["x", "y"]
  assert out["num_seeds"] == 3
  single = metrics.mean_std_over_seeds([{"wer": 0.3}])
  assert single == {"wer": {"mean": 0.3, "std": 0.0}, "num_seeds": 1}
  with pytest.raises(ValueError, match="differ at top level"):
    metrics.mean_std_over_seeds([{"a": 1.0}, {"b": 1.0}])
  with pytest.raises(ValueError, match="at least one"):
    metrics.mean_std_over_seeds([])


def test_accuracy_by_group_hand_computed():
  got = metrics.accuracy_by_group([0, 1, 1, 2, 2, 0], [0, 1, 0, 2, 1, 1], [20, 20, 21, 21, 22, 22])
  assert got == {"20": 1.0, "21": 0.5, "22": 0.0}
  with pytest.raises(ValueError, match="equal lengths"):
    metrics.accuracy_by_group([0, 1], [0, 1], [5])
