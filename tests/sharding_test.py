"""Sharded training on 8 simulated CPU devices equals single-device training."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from tests.conftest import run_python

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    from configs import pretrain
    from tinymyo_jax import reporting, sharding, train

    def run(data, fsdp, workdir):
      c = pretrain.get_config("smoke").unlock()
      c.total_steps, c.batch_size, c.eval_every, c.checkpoint_every = 3, 16, 100, 100
      c.mesh.data, c.mesh.fsdp = data, fsdp
      train.train_and_evaluate(c, workdir)
      return [r["train/loss"] for r in reporting.read_metrics(workdir) if "train/loss" in r], c

    single, _ = run(1, 1, sys.argv[1] + "/single")
    sharded, c = run(2, 4, sys.argv[1] + "/sharded")
    mesh = sharding.make_mesh(2, 4)
    tx, _ = train.make_optimizer(c)
    _, state = train.init_state(train.model_config_from(c), mesh, tx, c.seed)
    qkv = state["params"]["blocks"][0]["attn"]["qkv"]["kernel"]
    import optax
    mu = optax.tree_utils.tree_get(state["opt_state"], "mu")["blocks"][0]["attn"]["qkv"]["kernel"]
    print("RESULT" + json.dumps(dict(
        devices=jax.device_count(), single=single, sharded=sharded,
        qkv_spec=list(qkv.sharding.spec), qkv_shard=list(qkv.addressable_shards[0].data.shape),
        qkv_shape=list(qkv.shape), mu_spec=list(mu.sharding.spec),
        fc1_bias_spec=list(state["params"]["blocks"][0]["mlp"]["fc1"]["bias"].sharding.spec))))
""")


@pytest.mark.integration
def test_mesh_2x4_matches_single_device_and_shards_params(tmp_path):
  proc = run_python(["-c", SCRIPT, str(tmp_path)],
                    env_extra={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
  result = json.loads(proc.stdout.split("RESULT", 1)[1])
  assert result["devices"] == 8
  assert len(result["single"]) == len(result["sharded"]) == 3
  np.testing.assert_allclose(result["sharded"], result["single"], rtol=1e-4)
  # qkv kernel [embed, qkv]: the embed axis is split over the 4 fsdp devices.
  assert result["qkv_spec"] == ["fsdp", None]
  assert result["qkv_shard"] == [result["qkv_shape"][0] // 4, result["qkv_shape"][1]]
  assert result["mu_spec"] == ["fsdp", None]  # Adam moments follow the params
  assert result["fc1_bias_spec"] in ([None], [])
