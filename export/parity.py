"""Shared helpers to compare the Flax model, the PyTorch module and ONNX on the same input.

Outputs are named by what they return: `head` (the model's own head output) or `encoder`
(the latent tokens [B, N, D] after the final LayerNorm).
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np

OUTPUTS = ("head", "encoder")
# The UCI-EMG sample bundled in the repository (subject 01's recordings are byte-identical to the
# full distribution zip's, so the default windows are the same with either copy).
UCI_ZIP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "data_builders", "uci_emg", "sample", "EMG_data_for_gestures.zip")


def flax_forward(model, x: np.ndarray, mask: np.ndarray | None = None,
                 output: str = "head") -> np.ndarray:
  """Eval-mode output of a Flax TinyMyo as float32 numpy."""
  import jax.numpy as jnp

  xj = jnp.asarray(x, jnp.float32)
  mj = None if mask is None else jnp.asarray(mask, bool)
  out = model.encode(xj, mj) if output == "encoder" else model(xj, mj)
  return np.asarray(out, dtype=np.float32)


def torch_forward(model, x: np.ndarray, mask: np.ndarray | None = None,
                  output: str = "head") -> np.ndarray:
  """Eval-mode output of a TinyMyoTorch as float32 numpy (the module is left in eval mode)."""
  import torch

  model.eval()
  with torch.no_grad():
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    mt = None if mask is None else torch.from_numpy(np.asarray(mask, dtype=bool))
    out = model.encode(xt, mt) if output == "encoder" else model(xt, mt)
  return out.numpy()


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
  """Largest absolute difference; shapes must agree."""
  if a.shape != b.shape:
    raise ValueError(f"cannot compare outputs of shapes {a.shape} and {b.shape}")
  return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def uci_windows(num_windows: int, *, samples: int = 1000, zip_path: str = UCI_ZIP,
                member_index: int = 0, start_row: int = 6400, zscore: bool = True
                ) -> np.ndarray:
  """Consecutive 8-channel windows [num_windows, 8, samples] cut from one UCI-EMG recording.

  Reads only the rows it needs straight from the zip. The default start (row 6400 of subject
  01's first recording) is just before its first fist clench, so the windows hold real muscle
  activity. With `zscore`, each window is standardised per channel (as the fine-tuning data
  are), so values are O(1).
  """
  with zipfile.ZipFile(zip_path) as z:
    members = sorted(n for n in z.namelist() if n.endswith(".txt") and "raw_data" in n)
    if member_index >= len(members):
      raise ValueError(f"member_index {member_index} out of range: the zip has {len(members)} "
                       f"recordings")
    need = num_windows * samples
    with z.open(members[member_index]) as f:
      text = io.TextIOWrapper(f, encoding="ascii")
      for _ in range(1 + start_row):  # header (time, channel1..channel8, class) + skipped rows
        next(text, None)
      rows = [line for _, line in zip(range(need), text)]
  if len(rows) < need:
    raise ValueError(f"recording {members[member_index]} has {len(rows)} rows, fewer than the "
                     f"{need} needed for {num_windows} windows of {samples}")
  data = np.loadtxt(rows, delimiter="\t", dtype=np.float64)[:, 1:9]  # [rows, 8]
  x = data.reshape(num_windows, samples, 8).transpose(0, 2, 1)
  if zscore:
    std = x.std(axis=2, keepdims=True)
    x = (x - x.mean(axis=2, keepdims=True)) / np.where(std > 0, std, 1.0)  # flat channel -> 0
  return x.astype(np.float32)
