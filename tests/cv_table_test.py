"""The cross-validation table: per-fold accuracies, fold means and subject wins from run files."""

from __future__ import annotations

import json

import pytest

from experiments import cv_table


def write_network(path, acc, by_subject, val_losses=(1.0,)):
  path.mkdir(parents=True)
  by_subject = {s: {"mean": a, "std": 0.0} for s, a in by_subject.items()}
  (path / "summary.json").write_text(json.dumps({
      "runs": [{"best_eval_loss": loss} for loss in val_losses],
      "test": {"accuracy": {"mean": acc, "std": 0.0}, "accuracy_by_subject": by_subject}}))


def write_baseline(path, lda, rf):
  path.write_text(json.dumps({"models": {
      m: {"test": {"accuracy": sum(v.values()) / len(v), "accuracy_by_subject": v}}
      for m, v in (("lda", lda), ("random_forest", rf))}}))


def test_table_means_over_folds_and_counts_subject_wins(tmp_path, capsys):
  runs, base = tmp_path / "cv", tmp_path / "baselines"
  base.mkdir()
  subjects = ({"1": 0.5, "2": 0.7}, {"3": 0.9, "4": 0.3})  # two folds, two test subjects each
  for k, by_subject in enumerate(subjects):
    write_network(runs / f"ft_fold{k}", sum(by_subject.values()) / 2, by_subject)
    write_baseline(base / f"uci_200hz_fold{k}.json", {s: 0.5 for s in by_subject},
                   {s: 0.6 for s in by_subject})
  write_network(runs / "scratch_fold0", 0.4, {"1": 0.4, "2": 0.4})  # fold 1 not run yet
  assert cv_table.main(["--runs", str(runs), "--baselines", str(base), "--folds", "2"]) == 0
  out = capsys.readouterr().out
  rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines() if " | " in line}
  assert rows[cv_table.NETWORK_ROWS["ft"]].endswith("| 60.00 | 60.00 | 60.00 +/- 0.00 |")
  assert "| 40.00 | - | 40.00 (1 folds) |" in rows[cv_table.NETWORK_ROWS["scratch"]]
  assert cv_table.NETWORK_ROWS["lp"] not in rows  # a row with no finished run is left out
  assert rows["subject"] == "| subject | ft | scratch | lda | random_forest |"
  assert rows["4"] == "| 4 | 30.00 | - | 50.00 | 60.00 |"
  assert "ft: above the random forest on 2 of 4 subjects" in out
  assert "scratch: above the random forest on 0 of 2 subjects" in out
  # Paired per subject: ft - scratch on subjects 1, 2 = +0.1, +0.3; ft - forest on 1-4.
  assert "| ft | scratch | 2 | +20.00 | 2 / 0 | 0.500 |" in out
  assert "| ft | random_forest | 4 | +0.00 | 2 / 2 |" in out


def test_rows_come_from_several_run_folders(tmp_path, capsys):
  cross, uci, base = tmp_path / "cross", tmp_path / "uci", tmp_path / "baselines"
  base.mkdir()
  write_network(cross / "ft_fold0", 0.6, {"1": 0.6})
  write_network(uci / "uci_ft_fold0", 0.7, {"1": 0.7})
  write_network(uci / "ft_fold0", 0.1, {"1": 0.1})  # shadowed: the first folder holds ft_fold0
  write_baseline(base / "uci_200hz_fold0.json", {"1": 0.5}, {"1": 0.65})
  assert cv_table.main(["--runs", str(cross), str(uci), "--baselines", str(base),
                        "--folds", "1"]) == 0
  out = capsys.readouterr().out
  rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines() if " | " in line}
  assert rows[cv_table.NETWORK_ROWS["ft"]].endswith("| 60.00 | 60.00 |")
  assert rows[cv_table.NETWORK_ROWS["uci_ft"]].endswith("| 70.00 | 70.00 |")
  assert "uci_ft: above the random forest on 1 of 1 subjects" in out


def test_choice_on_validation_takes_each_folds_lower_validation_loss(tmp_path, capsys):
  runs, base = tmp_path / "cv", tmp_path / "baselines"
  base.mkdir()
  # fold 0: lp has the lower validation loss (and the lower test accuracy); fold 1: lpft, over
  # the mean of its two seeds (0.7, 0.9 -> 0.8 < 0.85); fold 2: lpft never ran.
  write_network(runs / "lp_fold0", 0.5, {"1": 0.5}, val_losses=(0.6,))
  write_network(runs / "lpft_fold0", 0.9, {"1": 0.9}, val_losses=(0.7,))
  write_network(runs / "lp_fold1", 0.7, {"2": 0.7}, val_losses=(0.85,))
  write_network(runs / "lpft_fold1", 0.8, {"2": 0.8}, val_losses=(0.7, 0.9))
  write_network(runs / "lp_fold2", 0.6, {"3": 0.6}, val_losses=(0.5,))
  for k in range(3):
    write_baseline(base / f"uci_200hz_fold{k}.json", {str(k + 1): 0.5}, {str(k + 1): 0.6})
  assert cv_table.main(["--runs", str(runs), "--baselines", str(base), "--folds", "3",
                        "--choose", "lp", "lpft"]) == 0
  out = capsys.readouterr().out
  assert ("chosen on validation loss: fold 0 lp, fold 1 lpft, fold 2 - (a candidate has no "
          "validation loss)" in out)
  rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines() if " | " in line}
  assert rows[cv_table.CHOSEN_ROW["chosen"]].endswith(
      "| 50.00 | 80.00 | - | 65.00 +/- 21.21 (2 folds) |")
  assert "| chosen | random_forest | 2 |" in out


@pytest.mark.parametrize("choose", [["lp"], ["lp", "nope"], ["lp", "chosen"]])
def test_choice_needs_two_known_rows(tmp_path, choose):
  with pytest.raises(SystemExit):
    cv_table.main(["--runs", str(tmp_path), "--baselines", str(tmp_path), "--choose", *choose])


def test_missing_folder_is_refused(tmp_path):
  with pytest.raises(SystemExit):
    cv_table.main(["--runs", str(tmp_path / "absent"), "--baselines", str(tmp_path)])


def test_one_task_without_folds(tmp_path, capsys):
  runs, base = tmp_path / "myo_tasks", tmp_path / "baselines"
  base.mkdir()
  write_network(runs / "ft_myoarmband", 0.8, {"3": 0.9, "51": 0.7})
  write_network(runs / "lp_myoarmband", 0.6, {"3": 0.5, "51": 0.7})
  write_baseline(base / "myoarmband.json", {"3": 0.6, "51": 0.6}, {"3": 0.8, "51": 0.8})
  assert cv_table.main(["--runs", str(runs), "--baselines", str(base),
                        "--task", "myoarmband"]) == 0
  out = capsys.readouterr().out
  assert "| row | myoarmband | mean +/- std |" in out
  rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines() if " | " in line}
  assert rows[cv_table.NETWORK_ROWS["ft"]].endswith("| 80.00 | 80.00 |")
  assert rows["51"] == "| 51 | 70.00 | 70.00 | 60.00 | 80.00 |"
  assert "ft: above the random forest on 1 of 2 subjects" in out


def test_logistic_regression_probe_rows_are_read_but_never_chosen_on_loss(tmp_path, capsys):
  runs, base = tmp_path / "cv", tmp_path / "baselines"
  base.mkdir()
  (runs / "lr_fold0").mkdir(parents=True)  # experiments/layer_probe.py: no network loss
  (runs / "lr_fold0" / "summary.json").write_text(json.dumps(
      {"test": {"accuracy": 0.75, "accuracy_by_subject": {"1": 0.75}}}))
  write_network(runs / "lp_fold0", 0.5, {"1": 0.5}, val_losses=(0.6,))
  write_baseline(base / "uci_200hz_fold0.json", {"1": 0.5}, {"1": 0.6})
  assert cv_table.main(["--runs", str(runs), "--baselines", str(base), "--folds", "1",
                        "--choose", "lp", "lr"]) == 0
  out = capsys.readouterr().out
  assert "chosen on validation loss: fold 0 - (a candidate has no validation loss)" in out
  rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines() if " | " in line}
  assert rows[cv_table.NETWORK_ROWS["lr"]].endswith("| 75.00 | 75.00 |")
