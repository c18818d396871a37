"""Cost model: the paper's configuration and the scaling table."""

import pytest

from export.gap9 import cost
from export.gap9 import plan as plan_lib


def test_paper_configuration_within_25_percent(make_config):
  r = cost.estimate(plan_lib.make_plan(make_config(variant="tiny", rope_mode="released"), 1000))
  assert r["macs"] == 1_908_642_816
  assert r["latency_s"] == pytest.approx(cost.PAPER["latency_s"], rel=0.25)
  assert r["energy_mj"] == pytest.approx(cost.PAPER["energy_mj"], rel=0.25)
  assert r["l3_bytes"] == sum(op.weight_bytes for op in plan_lib.build_ops(
      make_config(variant="tiny", rope_mode="released"), 1000)[0])


def test_scaling_grows_with_tokens_and_plot(tmp_path, make_config):
  rows = cost.scaling(make_config(variant="tiny", rope_mode="released"))
  assert [(r["channels"], r["samples"]) for r in rows] == [
      (4, 200), (8, 200), (16, 200), (4, 1000), (8, 1000), (16, 1000)]
  lat = {(r["channels"], r["samples"]): r["latency_s"] for r in rows}
  assert lat[(4, 200)] < lat[(8, 200)] < lat[(16, 200)] < lat[(16, 1000)]
  # attention is quadratic in tokens: doubling 400 -> 800 tokens more than doubles the time
  assert lat[(16, 1000)] > 2.5 * lat[(8, 1000)]
  cost.plot_scaling(rows, str(tmp_path / "s.png"))
  assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
