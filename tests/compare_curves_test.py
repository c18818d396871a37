"""experiments/compare_curves.py: two runs' logged curves, joined by step."""

from __future__ import annotations

import json

import pytest

from experiments import compare_curves


def _run(path, rows):
  path.mkdir()
  (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  return path


def test_joins_common_steps_and_reports_the_gap(tmp_path, capsys):
  a = _run(tmp_path / "a", [{"step": 10, "train/loss": 1.0}, {"step": 120, "eval/loss_masked": 0.2},
                            {"step": 240, "eval/loss_masked": 0.18}])
  b = _run(tmp_path / "b", [{"step": 120, "eval/loss_masked": 0.201},
                            {"step": 240, "eval/loss_masked": 0.189}, {"step": 360,
                                                                      "eval/loss_masked": 0.1}])
  table = compare_curves.compare(a, b, ["eval/loss_masked", "eval/loss"])
  assert table["eval/loss_masked"] == [(120, 0.2, 0.201), (240, 0.18, 0.189)]
  assert table["eval/loss"] == []
  assert compare_curves.main([str(a), str(b)]) == 0
  out = capsys.readouterr().out
  assert "largest gap at step 240: +5.00%" in out
  assert "eval/loss: no step logged by both runs" in out


def test_bad_runs_are_named(tmp_path, capsys):
  with pytest.raises(SystemExit):
    compare_curves.main([str(tmp_path / "missing"), str(tmp_path / "missing")])
  assert "metrics.jsonl does not exist" in capsys.readouterr().err
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / "metrics.jsonl").write_text('{"step": 1}\nnot json\n')
  with pytest.raises(SystemExit):
    compare_curves.main([str(bad), str(bad)])
  assert "metrics.jsonl:2 is not JSON" in capsys.readouterr().err
