"""The official <-> Flax mapping table and its array transforms (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from tinymyo_jax.models import weight_layouts as wm

RNG = np.random.default_rng(0)


def test_patch_transform_is_the_conv_as_linear_view_and_roundtrips():
  w = RNG.standard_normal((192, 1, 1, 20)).astype(np.float32)
  kernel = wm.PATCH.to_flax(w)
  assert kernel.shape == (20, 192)
  np.testing.assert_array_equal(kernel, w.reshape(192, 20).T)
  assert np.ascontiguousarray(wm.PATCH.to_official(kernel)).tobytes() == w.tobytes()


def test_conv1d_transform_matches_flax_kernel_layout():
  dw = RNG.standard_normal((256, 1, 3)).astype(np.float32)  # torch depthwise [out, in/g, k]
  assert wm.CONV1D.to_flax(dw).shape == (3, 1, 256)
  pw = RNG.standard_normal((256, 1536, 1)).astype(np.float32)
  assert wm.CONV1D.to_flax(pw).shape == (1, 1536, 256)
  np.testing.assert_array_equal(wm.CONV1D.to_official(wm.CONV1D.to_flax(pw)), pw)


def test_fused_qkv_splits_heads_identically_on_both_sides():
  d, h = 192, 3
  w = RNG.standard_normal((3 * d, d)).astype(np.float32)  # torch Linear [out, in]
  x = RNG.standard_normal((5, d)).astype(np.float32)
  torch_side = (x @ w.T).reshape(5, 3, h, d // h)  # released: reshape (N, 3, H, Dh)
  flax_side = (x @ wm.LINEAR.to_flax(w)).reshape(5, 3, h, d // h)
  np.testing.assert_array_equal(torch_side, flax_side)
  # head 1 of k comes from official rows 192 + 64 .. 192 + 127
  np.testing.assert_allclose(flax_side[:, 1, 1], x @ w[d + 64:d + 128].T, atol=1e-4)


@pytest.mark.parametrize("head,count", [("reconstruction", 103), ("classification", 103),
                                        ("regression", 107)])
def test_table_covers_every_tensor_once(head, count):
  table = wm.entries(8, head)
  assert len(table) == count
  assert len({e.official for e in table}) == count
  assert len({e.flax for e in table}) == count
  assert len(wm.entries(4, head)) == count - 4 * 12


def test_prefix_is_stripped_only_when_every_key_has_it():
  state = {"model.norm.weight": np.ones(2), "model.norm.bias": np.zeros(2)}
  stripped, had = wm.strip_prefix(state)
  assert had and sorted(stripped) == ["norm.bias", "norm.weight"]
  bare, had = wm.strip_prefix({"norm.weight": np.ones(2)})
  assert not had and list(bare) == ["norm.weight"]
  with pytest.raises(wm.WeightMapError, match=r"keys without it: \['norm.bias'\]"):
    wm.strip_prefix({"model.norm.weight": np.ones(2), "norm.bias": np.zeros(2)})


def _shapes_state(num_layers=8, d=192, hidden=768, head_key="model_head.decoder_pred.weight",
                  head_shape=(20, 192)):
  state = {"patch_embedding.patch_embed.proj.weight": np.zeros((d, 1, 1, 20))}
  for i in range(num_layers):
    state[f"blocks.{i}.mlp.fc1.weight"] = np.zeros((hidden, d))
  state[head_key] = np.zeros(head_shape)
  return state


def test_architecture_is_read_from_shapes():
  arch = wm.infer_architecture(_shapes_state())
  assert (arch.num_layers, arch.embed_dim, arch.mlp_hidden, arch.patch_size, arch.head) == (
      8, 192, 768, 20, "reconstruction")
  cls = wm.infer_architecture(_shapes_state(4, head_key="model_head.classifier.weight",
                                            head_shape=(6, 1536)))
  assert (cls.num_layers, cls.head, cls.num_channels, cls.num_outputs) == (
      4, "classification", 8, 6)
  with pytest.raises(wm.WeightMapError, match="not a multiple of the embedding width 192"):
    wm.infer_architecture(_shapes_state(head_key="model_head.classifier.weight",
                                        head_shape=(6, 1000)))
  with pytest.raises(wm.WeightMapError, match="exactly one head"):
    wm.infer_architecture(_shapes_state(head_key="model_head.other.weight"))
  gap = _shapes_state()
  del gap["blocks.3.mlp.fc1.weight"]
  with pytest.raises(wm.WeightMapError, match=r"not contiguous from 0: \[0, 1, 2, 4"):
    wm.infer_architecture(gap)
