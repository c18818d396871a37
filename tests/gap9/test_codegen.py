"""Generated C: builds with gcc -O2 -Wall -Werror and is bit-exact per layer with int_reference."""

import shutil

import numpy as np
import pytest

from export.gap9 import codegen
from export.gap9 import int_reference as ref
from export.gap9 import plan as plan_lib

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def test_generated_c_is_bit_exact_per_layer(tmp_path, quantized, test_windows):
  _, config, qm = quantized
  x_q = ref.quantize_input(qm, test_windows[0][:3])
  plan = codegen.generate(qm, tmp_path / "net")
  binary = codegen.compile_host(tmp_path / "net")
  _, trace = ref.run(qm, x_q)
  for i in range(len(x_q)):
    dump = tmp_path / f"dump{i}"
    dump.mkdir()
    logits, _ = codegen.run_host(binary, x_q[i], dump)
    got, want = codegen.read_dumps(plan, dump), codegen.expected_dumps(plan, trace, i)
    assert set(got) == set(want) and len(got) == len(plan.ops)
    for name in want:
      np.testing.assert_array_equal(got[name], want[name], err_msg=f"layer {name}, window {i}")
    np.testing.assert_array_equal(logits, trace["logits"][i])


def test_plan_arena_never_overlaps_live_buffers(make_config):
  plan = plan_lib.make_plan(make_config(variant="tiny"), 1000)
  items = list(plan.buffers.items())
  for i, (a, (sa, oa, fa, la)) in enumerate(items):
    for b, (sb, ob, fb, lb) in items[i + 1:]:
      if not (la < fb or lb < fa):
        assert oa + sa <= ob or ob + sb <= oa, (a, b)
  assert max(o + s for s, o, _, _ in plan.buffers.values()) == plan.arena_bytes
  assert max(op.l1_bytes for op in plan.ops) <= plan_lib.L1_BYTES
  # the deployed 8 x 1000 model: 400 tokens; fc1 out [400, 768] is the biggest buffer
  assert plan.buffers["b0.fc1"][0] == 400 * 768
  assert plan.stream_weights and plan.weights_l3_bytes > plan_lib.L2_BYTES
  assert sum(op.macs for op in plan.ops) == 1_908_642_816


def test_model_not_fitting_l2_is_rejected_with_numbers(make_config):
  with pytest.raises(plan_lib.PlanError, match=r"does not fit L2.*'b0\.fc1'.*> \d+ B usable"):
    plan_lib.make_plan(make_config(variant="tiny"), 1000, l2_bytes=700 * 1024)


def test_layer_not_tileable_into_l1_is_rejected(make_config):
  with pytest.raises(plan_lib.PlanError, match=r"layer 'b0.attn' \(attention.*4096 B of L1"):
    plan_lib.make_plan(make_config(variant="tiny"), 1000, l1_bytes=4096)
