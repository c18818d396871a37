"""`QuantizedModel`: the integer tensors and float scales of a quantised classifier, as .npz."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from tinymyo_jax import atomic_io
from tinymyo_jax.models.tinymyo import ModelConfig
from tinymyo_jax.quant.fake_quant import QuantConfig


@dataclasses.dataclass
class QuantizedModel:
  """Everything the integer pipeline needs: integer tensors by name plus the float scales."""

  config: ModelConfig
  qcfg: QuantConfig
  scales: dict
  tensors: dict

  def save(self, path: str | Path) -> None:
    """Writes an .npz atomically."""
    meta = json.dumps({"config": dataclasses.asdict(self.config),
                       "qcfg": dataclasses.asdict(self.qcfg), "scales": self.scales})
    with atomic_io.atomic_path(path, suffix=".npz") as tmp:
      np.savez(tmp, __meta__=np.array(meta), **self.tensors)

  @classmethod
  def load(cls, path: str | Path) -> QuantizedModel:
    with np.load(path) as z:
      meta = json.loads(str(z["__meta__"]))
      tensors = {k: z[k] for k in z.files if k != "__meta__"}
    return cls(ModelConfig(**meta["config"]), QuantConfig(**meta["qcfg"]), meta["scales"],
               tensors)
