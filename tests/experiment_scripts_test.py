"""The experiment scripts: valid bash, and a re-run skips every run that has its summary.json."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPTS = sorted(f for f in os.listdir(os.path.join(REPO, "experiments")) if f.endswith(".sh"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_parses(script):
  subprocess.run(["bash", "-n", os.path.join(REPO, "experiments", script)], check=True)


@pytest.mark.parametrize("script,stage,workdirs,extra_env", [
    ("uci_results.sh", "subject", ["ft_subject_pretrained", "ft_subject_scratch"], {}),
    ("uci_results.sh", "probe", ["lp_subject_pretrained", "lp_subject_scratch"], {}),
    ("cross_corpus.sh", "uci", ["ft_uci_200hz", "lp_uci_200hz"], {}),
    ("cross_corpus.sh", "cv", [f"cv/{row}_fold{k}" for k in range(5)
                               for row in ("lp", "lpft", "lr", "lpft_lr")],
     {"CV_ROWS": "lp lpft lr lpft_lr"}),
    ("cross_corpus.sh", "uci", [f"{row}_uci_200hz_pooled" for row in ("lp", "lpft", "lpft_aug")],
     {"UCI_ROWS": "lp lpft lpft_aug", "SPLIT": "pooled", "SEEDS": "1"}),
    ("cross_corpus.sh", "myo_tasks", [f"myo_tasks/{row}_{task}"
                                      for task in ("myo_readings", "myoarmband")
                                      for row in ("lp", "lr", "ft", "scratch", "lpft")],
     {"MYO_ROWS": "lp lr ft scratch lpft"}),
])
def test_finished_runs_are_not_redone(tmp_path, script, stage, workdirs, extra_env):
  for name in workdirs:
    (tmp_path / name).mkdir(parents=True)
    (tmp_path / name / "summary.json").write_text("{}")
  env = {**os.environ, "PY": sys.executable, "OUT": str(tmp_path), "DATA": str(tmp_path),
         **extra_env}
  out = subprocess.run(["bash", os.path.join(REPO, "experiments", script), stage], env=env,
                       capture_output=True, text=True, check=True, timeout=120).stdout
  assert out.count("done already:") == len(workdirs), out
  assert not (tmp_path / "times.txt").exists()  # nothing ran, so nothing was timed


def test_lpft_rows_refuse_several_seeds(tmp_path):
  """LP-FT starts from one probe's params: with SEEDS=3 the script says so instead of running."""
  env = {**os.environ, "PY": sys.executable, "OUT": str(tmp_path), "DATA": str(tmp_path),
         "UCI_ROWS": "lpft", "SEEDS": "3"}
  run = subprocess.run(["bash", os.path.join(REPO, "experiments", "cross_corpus.sh"), "uci"],
                       env=env, capture_output=True, text=True, timeout=120)
  assert run.returncode == 2
  assert "the lpft row starts from one probe: it needs SEEDS=1 (got 3)" in run.stdout
