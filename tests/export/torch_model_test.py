"""The plain PyTorch TinyMyo: official names, fixture parity, masks, train-mode stochasticity."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from safetensors.numpy import load_file  # noqa: E402

from export.torch_model import TinyMyoTorch, TorchConfig, build  # noqa: E402
from tests.export.conftest import CLASSIFIER_ST, FIXTURES, PRETRAIN_ST, need  # noqa: E402

TOL = 1e-5
TEST = dict(num_layers=2, embed_dim=48, num_heads=3, mlp_ratio=2.0)


def _count(model) -> int:
  return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("kw,expected", [
    (dict(), 3_567_380),
    (dict(num_layers=4), 1_787_924),
    (dict(head="classification", num_channels=8, num_outputs=6), 3_572_742),
    (dict(head="classification", num_channels=16, num_outputs=53), 3_726_389),
    (dict(head="regression", num_channels=16, num_outputs=5), 4_352_517),
])
def test_parameter_counts_match_the_released_model(kw, expected):
  assert _count(TinyMyoTorch(TorchConfig(**kw))) == expected


def test_official_state_dicts_load_strictly_and_reproduce_fixtures():
  io = np.load(need(FIXTURES / "pretrain_io.npz"))
  model = build(TorchConfig(), load_file(need(PRETRAIN_ST))).eval()
  x = torch.from_numpy(io["x"])
  with torch.no_grad():
    assert np.abs(model(x).numpy() - io["out_nomask"]).max() < TOL
    element = model(x, torch.from_numpy(io["mask"])).numpy()
    patch = model(x, torch.from_numpy(io["mask_patches"])).numpy()
    latent = model.encode(x).numpy()
  assert np.abs(element - io["out_masked"]).max() < TOL
  np.testing.assert_array_equal(element, patch)  # [B,C,T] and [B,N] masks are the same mask
  assert np.abs(latent - io["latent_nomask"]).max() < TOL
  cls_io = np.load(need(FIXTURES / "classifier_io.npz"))
  cls = build(TorchConfig(head="classification", num_channels=8, num_outputs=6),
              load_file(need(CLASSIFIER_ST))).eval()
  with torch.no_grad():
    assert np.abs(cls(torch.from_numpy(cls_io["x"])).numpy() - cls_io["logits"]).max() < TOL


def test_wrong_state_dict_and_inputs_are_rejected():
  model = TinyMyoTorch(TorchConfig(head="classification", num_channels=8, num_outputs=6, **TEST))
  with pytest.raises(RuntimeError, match="Missing key"):
    build(model.config, {"norm.weight": np.ones(48, np.float32)})
  with pytest.raises(ValueError, match="built for 8 channels, got input with 4"):
    model(torch.zeros(1, 4, 100))
  with pytest.raises(ValueError, match="not divisible by the patch size 20"):
    model(torch.zeros(1, 8, 110))
  recon = TinyMyoTorch(TorchConfig(**TEST))
  with pytest.raises(ValueError, match=r"mask must have shape \[B, N\]=\[1, 10\]"):
    recon(torch.zeros(1, 2, 100), torch.zeros(1, 7, dtype=torch.bool))


def test_train_mode_applies_droppath_per_example_and_eval_is_deterministic():
  torch.manual_seed(0)
  model = TinyMyoTorch(TorchConfig(dropout=0.0, attn_dropout=0.0, drop_path=0.5, **TEST))
  x = torch.randn(1, 2, 100).repeat(32, 1, 1)  # 32 identical examples
  model.train()
  out = model(x).detach()
  distinct = {tuple(np.round(o.numpy().ravel()[:4], 5)) for o in out}
  assert len(distinct) > 4  # examples took different residual paths
  model.eval()
  with torch.no_grad():
    ref = model(x)
  np.testing.assert_array_equal(ref[0].numpy(), ref[31].numpy())
  model.train()
  no_drop = TinyMyoTorch(TorchConfig(dropout=0.0, attn_dropout=0.0, drop_path=0.0, **TEST))
  no_drop.load_state_dict(model.state_dict())
  no_drop.train()
  assert torch.allclose(no_drop(x), ref, atol=1e-6)  # with all rates 0, train == eval


def test_training_step_backpropagates_to_every_parameter():
  model = TinyMyoTorch(TorchConfig(head="regression", num_channels=2, num_outputs=3,
                                   target_len=40, **TEST)).train()
  out = model(torch.randn(3, 2, 100))
  assert out.shape == (3, 40, 3)
  out.square().mean().backward()
  assert all(p.grad is not None and torch.isfinite(p.grad).all()
             for name, p in model.named_parameters() if name != "mask_token")
