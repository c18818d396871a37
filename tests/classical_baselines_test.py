"""The classical baselines script: time-domain features by hand, and a run on a built corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest

from experiments import classical_baselines as cb
from tests.conftest import REPO


def test_time_domain_features_of_a_known_signal():
  x = np.array([[[1.0, -1.0, 2.0, -2.0, 0.5]]])  # one window, one channel
  f = dict(zip(cb.FEATURES, cb.td_features(x)[0]))
  assert f["mav"] == pytest.approx(6.5 / 5)
  assert f["rms"] == pytest.approx(np.sqrt((1 + 1 + 4 + 4 + 0.25) / 5))
  assert f["wl"] == pytest.approx(2 + 3 + 4 + 2.5)
  assert f["zc"] == 4 and f["ssc"] == 3
  assert f["log_rms"] == pytest.approx(np.log(f["rms"] + 1e-6))
  # Features are grouped by kind: [mav of each channel, rms of each channel, ...].
  two = cb.td_features(np.concatenate([x, 2 * x], axis=1))
  assert two.shape == (1, 12) and two[0, 1] == pytest.approx(2 * two[0, 0])


@pytest.fixture(scope="module")
def uci_dummy(tmp_path_factory):
  from data_builders import build
  data_dir = tmp_path_factory.mktemp("tfds")
  build.build("uci_emg", manual_dir=REPO / "data_builders" / "uci_emg" / "dummy_data",
              data_dir=data_dir, config="hz200")
  return data_dir


def test_run_scores_both_models_per_subject_and_never_refits(uci_dummy, tmp_path, capsys):
  pytest.importorskip("sklearn")
  out = tmp_path / "scores.json"
  assert cb.main(["--task", "uci_200hz", "--data_dir", str(uci_dummy), "--out", str(out),
                  "--rotate_subject", "21"]) == 0
  result = json.loads(out.read_text())
  assert sorted(result["models"]) == ["lda", "random_forest"]
  for scores in result["models"].values():
    test = scores["test"]
    assert 0 <= test["accuracy"] <= 1 and 0 <= test["macro_f1"] <= 1
    assert list(test["accuracy_by_subject"]) == ["21"]  # the dummy copy's one test subject
    assert len(scores["test_rotations"]) == 8
    assert scores["test_rotations"][0] == pytest.approx(test["accuracy"])
  assert result["num_train_windows"] == 4 * 8  # 4 training cycles x 8 windows (builder test)
  printed = capsys.readouterr().out
  assert "| random_forest |" in printed
  out.write_text(json.dumps({**result, "task": "kept"}))
  cb.main(["--task", "uci_200hz", "--data_dir", str(uci_dummy), "--out", str(out)])
  assert json.loads(out.read_text())["task"] == "kept"  # an existing result is not recomputed


def test_regression_task_is_refused(uci_dummy):
  with pytest.raises(ValueError, match="task 'db8' is a regression task"):
    cb.run("db8", str(uci_dummy))
