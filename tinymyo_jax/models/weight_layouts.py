"""The one mapping between the official TinyMyo state dict and the Flax parameter tree.

Pure numpy (no JAX, no torch): `export/` and `tinymyo_jax.pretrained` both build on it. Besides
the official layout it knows the braindecode one (`braindecode_to_official`).

Official keys (the released PyTorch code, `model.` prefix stripped) on the left, Flax paths on
the right, with the exact array transform each way. Every transform is a reshape or a
transpose, so a round trip is bit-identical.

| official key (no `model.` prefix)        | Flax path                    | transform        |
| ---------------------------------------- | ---------------------------- | ---------------- |
| mask_token [1,1,D]                       | mask_token [1,1,D]           | identity         |
| patch_embedding.patch_embed.proj.weight  | patch_embed.kernel [P,D]     | conv-as-linear   |
|   [D,1,1,P]                              |                              |                  |
| patch_embedding.patch_embed.proj.bias    | patch_embed.bias             | identity         |
| blocks.i.norm{1,2}.weight / .bias        | blocks.i.norm{1,2}.scale/bias | identity        |
| norm.weight / .bias                      | norm.scale / .bias           | identity         |
| blocks.i.attn.qkv.weight [3D,D]          | blocks.i.attn.qkv.kernel     | transpose        |
| blocks.i.attn.proj, mlp.fc1, mlp.fc2     | ....kernel [in,out]          | transpose        |
| model_head.decoder_pred.weight [P,D]     | head.decoder_pred.kernel     | transpose        |
| model_head.classifier.weight [K,C*D]     | head.classifier.kernel       | transpose        |
| model_head.regressor.{0,3,5}.weight      | head.{pointwise_in,depthwise,| Conv1d [o,i,k]   |
|                                          |  pointwise_out}.kernel       |  <-> [k,i,o]     |

The fused qkv needs no reordering: both sides split its outputs as (3, heads, head_dim), i.e.
columns [q | k | v] with head h at h*Dh .. h*Dh+Dh-1 inside each part.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import numpy as np

OFFICIAL_PREFIX = "model."
REGRESSION_HIDDEN = 256  # hidden width of the released DB8 regression head


class WeightMapError(ValueError):
  """A state dict does not fit the TinyMyo layout (message names the offending keys)."""


@dataclasses.dataclass(frozen=True)
class Transform:
  """A pair of exact array maps: official (torch) layout <-> Flax layout."""

  name: str
  to_flax: Callable[[np.ndarray], np.ndarray]
  to_official: Callable[[np.ndarray], np.ndarray]


IDENTITY = Transform("identity", lambda a: a, lambda a: a)
LINEAR = Transform("transpose", lambda a: a.T, lambda a: a.T)  # [out,in] <-> [in,out]
CONV1D = Transform("conv1d", lambda a: a.transpose(2, 1, 0), lambda a: a.transpose(2, 1, 0))
PATCH = Transform(  # Conv2d [D,1,1,P] <-> Linear kernel [P,D]
    "conv-as-linear",
    lambda a: a.reshape(a.shape[0], -1).T,
    lambda a: a.T.reshape(a.shape[1], 1, 1, a.shape[0]))


@dataclasses.dataclass(frozen=True)
class Entry:
  """One tensor: its official key, its Flax path and the transform between them."""

  official: str
  flax: tuple[str | int, ...]
  transform: Transform


def _linear(official: str, flax: tuple) -> list[Entry]:
  return [Entry(f"{official}.weight", flax + ("kernel",), LINEAR),
          Entry(f"{official}.bias", flax + ("bias",), IDENTITY)]


def _norm(official: str, flax: tuple) -> list[Entry]:
  return [Entry(f"{official}.weight", flax + ("scale",), IDENTITY),
          Entry(f"{official}.bias", flax + ("bias",), IDENTITY)]


def _conv1d(official: str, flax: tuple) -> list[Entry]:
  return [Entry(f"{official}.weight", flax + ("kernel",), CONV1D),
          Entry(f"{official}.bias", flax + ("bias",), IDENTITY)]


HEAD_ENTRIES = {
    "reconstruction": _linear("model_head.decoder_pred", ("head", "decoder_pred")),
    "classification": _linear("model_head.classifier", ("head", "classifier")),
    "regression": (_conv1d("model_head.regressor.0", ("head", "pointwise_in"))
                   + _conv1d("model_head.regressor.3", ("head", "depthwise"))
                   + _conv1d("model_head.regressor.5", ("head", "pointwise_out"))),
}

# The key that identifies each head type in a state dict.
HEAD_MARKERS = {
    "model_head.decoder_pred.weight": "reconstruction",
    "model_head.classifier.weight": "classification",
    "model_head.regressor.0.weight": "regression",
}


def entries(num_layers: int, head: str) -> list[Entry]:
  """The full mapping table for a model with `num_layers` blocks and the given head."""
  table = [Entry("mask_token", ("mask_token",), IDENTITY),
           Entry("patch_embedding.patch_embed.proj.weight", ("patch_embed", "kernel"), PATCH),
           Entry("patch_embedding.patch_embed.proj.bias", ("patch_embed", "bias"), IDENTITY)]
  for i in range(num_layers):
    b = f"blocks.{i}"
    table += _norm(f"{b}.norm1", ("blocks", i, "norm1"))
    table += _linear(f"{b}.attn.qkv", ("blocks", i, "attn", "qkv"))
    table += _linear(f"{b}.attn.proj", ("blocks", i, "attn", "proj"))
    table += _norm(f"{b}.norm2", ("blocks", i, "norm2"))
    table += _linear(f"{b}.mlp.fc1", ("blocks", i, "mlp", "fc1"))
    table += _linear(f"{b}.mlp.fc2", ("blocks", i, "mlp", "fc2"))
  table += _norm("norm", ("norm",))
  return table + HEAD_ENTRIES[head]


# ----------------------------------------------------------------------------- key prefixes


def strip_prefix(state: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bool]:
  """Removes the Lightning `model.` prefix when every key has it. Returns (state, had_prefix).

  A mix of prefixed and bare keys is rejected: it means two state dicts were merged.
  """
  prefixed = [k for k in state if k.startswith(OFFICIAL_PREFIX)]
  if not prefixed:
    return dict(state), False
  if len(prefixed) != len(state):
    bare = sorted(k for k in state if not k.startswith(OFFICIAL_PREFIX))
    raise WeightMapError(f"state dict mixes keys with and without the '{OFFICIAL_PREFIX}' "
                         f"prefix; keys without it: {bare}")
  return {k[len(OFFICIAL_PREFIX):]: v for k, v in state.items()}, True


# ----------------------------------------------------------------------------- inference


@dataclasses.dataclass(frozen=True)
class Inferred:
  """Architecture facts readable from tensor shapes alone."""

  num_layers: int
  embed_dim: int
  mlp_hidden: int
  patch_size: int
  head: str
  num_channels: int | None  # None for the reconstruction head
  num_outputs: int


def _shape(state: dict[str, np.ndarray], key: str) -> tuple[int, ...]:
  if key not in state:
    raise WeightMapError(f"state dict has no tensor {key!r}, which every TinyMyo model has")
  return tuple(state[key].shape)


def infer_architecture(state: dict[str, np.ndarray], *, reduction: str = "concat"
                       ) -> Inferred:
  """Reads depth, width, patch size and head type from a (prefix-free) official state dict."""
  block_ids = sorted({int(m.group(1)) for k in state
                      if (m := re.match(r"blocks\.(\d+)\.", k))})
  if not block_ids:
    raise WeightMapError("state dict has no 'blocks.<i>.' tensors; it is not a TinyMyo model "
                         f"(first keys: {sorted(state)[:5]})")
  if block_ids != list(range(len(block_ids))):
    raise WeightMapError(f"transformer block indices are not contiguous from 0: {block_ids}")
  patch = _shape(state, "patch_embedding.patch_embed.proj.weight")
  if len(patch) != 4 or patch[1:3] != (1, 1):
    raise WeightMapError("patch_embedding.patch_embed.proj.weight must have shape "
                         f"[D, 1, 1, P], got {list(patch)}")
  embed_dim, patch_size = patch[0], patch[3]
  fc1 = _shape(state, "blocks.0.mlp.fc1.weight")
  heads = [HEAD_MARKERS[k] for k in HEAD_MARKERS if k in state]
  if len(heads) != 1:
    head_keys = sorted(k for k in state if k.startswith("model_head."))
    raise WeightMapError(f"expected exactly one head (one of {sorted(HEAD_MARKERS)}), found "
                         f"{len(heads)}; model_head keys: {head_keys}")
  head = heads[0]
  num_channels = None
  if head == "reconstruction":
    num_outputs = _shape(state, "model_head.decoder_pred.weight")[0]
  elif head == "classification":
    num_outputs, fused = _shape(state, "model_head.classifier.weight")
    if reduction == "concat":
      if fused % embed_dim:
        raise WeightMapError(f"model_head.classifier.weight has {fused} input features, not a "
                             f"multiple of the embedding width {embed_dim}")
      num_channels = fused // embed_dim
  else:
    w_in = _shape(state, "model_head.regressor.0.weight")
    num_outputs = _shape(state, "model_head.regressor.5.weight")[0]
    if w_in[1] % embed_dim:
      raise WeightMapError(f"model_head.regressor.0.weight has {w_in[1]} input channels, not a "
                           f"multiple of the embedding width {embed_dim}")
    num_channels = w_in[1] // embed_dim
    if w_in[0] != REGRESSION_HIDDEN:
      raise WeightMapError(f"model_head.regressor.0.weight has {w_in[0]} output channels; the "
                           f"regression head has a fixed hidden width of {REGRESSION_HIDDEN}")
  return Inferred(num_layers=len(block_ids), embed_dim=embed_dim, mlp_hidden=fc1[0],
                  patch_size=patch_size, head=head, num_channels=num_channels,
                  num_outputs=num_outputs)


# ----------------------------------------------------------------------------- conversion


def _get(tree: dict, path: tuple) -> np.ndarray:
  node = tree
  for p in path:
    if p not in node and str(p) in node:
      p = str(p)  # checkpoints restore integer keys as strings
    node = node[p]
  return node


def _set(tree: dict, path: tuple, value) -> None:
  node = tree
  for p in path[:-1]:
    node = node.setdefault(p, {})
  node[path[-1]] = value


def flatten_paths(tree: dict, prefix: tuple = ()) -> dict[tuple, object]:
  """{path tuple: leaf} for a nested dict (integer-like string keys become ints)."""
  out = {}
  for k, v in tree.items():
    k = int(k) if isinstance(k, str) and k.isdigit() else k
    if isinstance(v, dict):
      out.update(flatten_paths(v, prefix + (k,)))
    else:
      out[prefix + (k,)] = v
  return out


def official_to_flax(state: dict[str, np.ndarray], table: list[Entry],
                     expected_shapes: dict[tuple, tuple[int, ...]]) -> dict:
  """Maps a prefix-free official state dict onto a nested Flax param dict.

  Every table entry must be present with the shape that `expected_shapes` (Flax path -> shape)
  dictates; extra keys in `state` are the caller's business (see `leftover_keys`).
  """
  missing = [e.official for e in table if e.official not in state]
  if missing:
    raise WeightMapError(f"state dict lacks {len(missing)} tensor(s) the model needs: {missing}")
  params: dict = {}
  for e in table:
    value = np.asarray(e.transform.to_flax(np.asarray(state[e.official])))
    want = tuple(expected_shapes[e.flax])
    if value.shape != want:
      official_want = tuple(e.transform.to_official(np.empty(want)).shape)
      raise WeightMapError(f"tensor {e.official!r} has shape {list(state[e.official].shape)}, "
                           f"the model expects {list(official_want)}")
    _set(params, e.flax, np.ascontiguousarray(value))
  return params


def flax_to_official(params: dict, table: list[Entry]) -> dict[str, np.ndarray]:
  """Maps a nested Flax param dict onto official keys (no prefix), as contiguous numpy arrays."""
  flat = flatten_paths(params)
  missing = [".".join(map(str, e.flax)) for e in table if e.flax not in flat]
  if missing:
    raise WeightMapError(f"Flax params lack {len(missing)} tensor(s): {missing}")
  table_paths = {e.flax for e in table}
  extra = sorted(".".join(map(str, p)) for p in flat if p not in table_paths)
  if extra:
    raise WeightMapError(f"Flax params hold tensors with no official name: {extra}")
  return {e.official: np.ascontiguousarray(e.transform.to_official(np.asarray(
      _get(params, e.flax)))) for e in table}


def leftover_keys(state: dict[str, np.ndarray], table: list[Entry]) -> list[str]:
  """Keys of `state` that the table does not consume."""
  used = {e.official for e in table}
  return sorted(k for k in state if k not in used)


# ----------------------------------------------------------------------------- layouts

# braindecode's converted TinyMyo (`braindecode/tinymyo-pretrained`, `tinymyo-uci-emg`): the
# official names without `model.`, the classifier as `final_layer`, the patch Conv2d stored as
# the equivalent Linear(P, D) weight [D, P], and no mask token, decoder or regressor.
BRAINDECODE_HEAD = "final_layer"
BRAINDECODE_PATCH = "patch_embed"  # the name we write; any 2-D `*patch*.weight` is read
OFFICIAL_PATCH = "patch_embedding.patch_embed.proj"
LAYOUTS = {
    "official": f"released Lightning state dict: '{OFFICIAL_PREFIX}' prefix (optional), "
                f"{OFFICIAL_PATCH}.weight [D,1,1,P], mask_token, model_head.*",
    "braindecode": f"braindecode.models.TinyMyo: no prefix, a Linear patch weight [D,P], "
                   f"{BRAINDECODE_HEAD}.* classifier (or no head), no mask_token",
}


def _braindecode_patch_key(state: dict[str, np.ndarray]) -> str | None:
  """The one non-block 2-D `*patch*.weight` tensor (braindecode's patch projection), if any."""
  found = [k for k in state if "patch" in k and k.endswith(".weight") and np.ndim(state[k]) == 2
           and not k.startswith(("blocks.", f"{BRAINDECODE_HEAD}."))]
  if len(found) > 1:
    raise WeightMapError(f"several candidate patch projections {sorted(found)}; expected one")
  return found[0] if found else None


def detect_layout(state: dict[str, np.ndarray]) -> str:
  """'official' or 'braindecode' for a prefix-free state dict.

  Raises:
    WeightMapError: neither layout fits (the message lists both).
  """
  if f"{OFFICIAL_PATCH}.weight" in state:
    return "official"
  has_blocks = any(k.startswith("blocks.") for k in state)
  if has_blocks and _braindecode_patch_key(state) is not None:
    return "braindecode"
  known = "; ".join(f"{name}: {text}" for name, text in LAYOUTS.items())
  raise WeightMapError(f"the tensors fit no known TinyMyo layout (first keys: "
                       f"{sorted(state)[:4]}); known layouts: {known}")


def braindecode_to_official(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Renames a braindecode state dict to the official names (prefix-free); exact reshapes.

  The Linear patch weight [D, P] becomes the Conv2d weight [D, 1, 1, P] and `final_layer.*`
  becomes `model_head.classifier.*`; other keys keep their names (unknown ones are left for
  `leftover_keys` to report).
  """
  patch = _braindecode_patch_key(state)
  if patch is None:
    raise WeightMapError("braindecode state dict has no 2-D '*patch*.weight' tensor")
  bias = patch[:-len("weight")] + "bias"
  out = {}
  for key, value in state.items():
    if key == patch:
      d, p = value.shape
      out[f"{OFFICIAL_PATCH}.weight"] = np.asarray(value).reshape(d, 1, 1, p)
    elif key == bias:
      out[f"{OFFICIAL_PATCH}.bias"] = value
    elif key.startswith(f"{BRAINDECODE_HEAD}."):
      out["model_head.classifier." + key[len(BRAINDECODE_HEAD) + 1:]] = value
    else:
      out[key] = value
  return out


def official_to_braindecode(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Inverse of `braindecode_to_official`, dropping the mask token and non-classifier heads."""
  out = {}
  for key, value in strip_prefix(state)[0].items():
    if key == f"{OFFICIAL_PATCH}.weight":
      out[f"{BRAINDECODE_PATCH}.weight"] = np.asarray(value).reshape(value.shape[0], -1)
    elif key == f"{OFFICIAL_PATCH}.bias":
      out[f"{BRAINDECODE_PATCH}.bias"] = value
    elif key.startswith("model_head.classifier."):
      out[f"{BRAINDECODE_HEAD}." + key.split(".")[-1]] = value
    elif key != "mask_token" and not key.startswith("model_head."):
      out[key] = value
  return out
