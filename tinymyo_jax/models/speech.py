"""Silent-speech model: a strided residual 1-D conv front-end, then the TinyMyo Transformer blocks.

Layout: EMG [B, T, 8] at 1 kHz (channels LAST, as the reference `EMGTransformer` takes it) ->
3 ResBlocks (8->D stride 2, D->D s2, D->D s2; x8 down-sampling) -> `w_raw_in` Linear(D, D) ->
TinyMyo `Block`s over the T/8 time tokens (one "channel", so rope "flat" = time order) -> final
LayerNorm `norm` -> `w_out`: 38 CTC logits (recognition) or 26 MFCCs per frame (synthesis).
Output [B, ceil(T/8), V]. `blocks` and `norm` have TinyMyo's names and shapes, so a pretrained
encoder loads into them (`load_encoder_params`). The loss and CTC decoding are the task's
(`tinymyo_jax.tasks.speech`); tokenizer and frame arithmetic are `tinymyo_jax.speech_units`.

Train/eval switch: every call takes `deterministic`. With `deterministic=False` BatchNorm uses
the batch statistics (only over valid frames when `lengths` is given) and updates its running
averages (nnx.BatchStat variables, momentum 0.9 = PyTorch's 0.1), and dropout/DropPath are
active (needs `rngs`). With `deterministic=True` BatchNorm uses the running averages and nothing
is mutated. A training step must therefore carry the BatchStat variables out of the forward pass
and exclude them from gradients and weight decay (differentiate w.r.t. `nnx.Param` only).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from tinymyo_jax.models.layers import ROPE_MODES, Block, dense, layer_norm, logical
from tinymyo_jax.models.tinymyo import VARIANTS, ModelConfig, load_pure_params
from tinymyo_jax.speech_units import NUM_CHAR_CLASSES, TASKS

# ----------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class SpeechConfig:
  """Architecture of the speech model; the encoder fields mirror `ModelConfig`."""

  task: str = "recognition"  # "recognition" (CTC characters) or "synthesis" (MFCC frames)
  num_emg_channels: int = 8
  num_layers: int = 8
  embed_dim: int = 192  # also the width of the conv front-end, as in the reference
  num_heads: int = 3
  mlp_ratio: float = 4.0
  rope_mode: str = "flat"
  dropout: float = 0.1
  attn_dropout: float = 0.1
  drop_path: float = 0.1
  num_mfcc: int = 26
  max_shift: int = 7  # training-time random shift of the input, in samples (0 disables)
  bn_momentum: float = 0.9
  dtype: str = "float32"

  def __post_init__(self):
    if self.task not in TASKS:
      raise ValueError(f"unknown speech task {self.task!r}; expected one of {TASKS}")
    if self.rope_mode not in ROPE_MODES:
      raise ValueError(f"unknown rope_mode {self.rope_mode!r}; expected one of {ROPE_MODES}")
    if self.dtype not in ("float32", "bfloat16"):
      raise ValueError(f"unknown dtype {self.dtype!r}; expected 'float32' or 'bfloat16'")
    if self.max_shift < 0:
      raise ValueError(f"max_shift must be >= 0, got {self.max_shift}")

  @property
  def num_outputs(self) -> int:
    return NUM_CHAR_CLASSES if self.task == "recognition" else self.num_mfcc

  @classmethod
  def from_variant(cls, variant: str, task: str = "recognition", **overrides) -> SpeechConfig:
    """Config with the encoder shape of a TinyMyo variant ('tiny', 'small', 'test')."""
    if variant not in VARIANTS:
      raise ValueError(f"unknown model variant {variant!r}; expected one of {sorted(VARIANTS)}")
    shape = {k: v for k, v in VARIANTS[variant].items() if k != "patch_size"}
    return cls(task=task, **{**shape, **overrides})

  @classmethod
  def from_model_config(cls, config: ModelConfig, task: str = "recognition",
                        **overrides) -> SpeechConfig:
    """Config whose encoder matches a (pretrained) TinyMyo `ModelConfig`."""
    shape = {k: getattr(config, k) for k in ("num_layers", "embed_dim", "num_heads", "mlp_ratio",
                                             "dropout", "attn_dropout", "drop_path", "dtype")}
    return cls(task=task, **{**shape, **overrides})


# ----------------------------------------------------------------------------- model

# PyTorch's default conv init: U(+-1/sqrt(fan_in)) == variance_scaling(1/3, fan_in, uniform).
torch_conv_init = nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


class ConvBN(nnx.Module):
  """Conv1d (channels last) followed by BatchNorm."""

  def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, *, momentum: float,
               dtype, rngs: nnx.Rngs):
    self.conv = nnx.Conv(in_ch, out_ch, (kernel,), (stride,), padding=((kernel // 2,) * 2,),
                         dtype=dtype, param_dtype=jnp.float32,
                         kernel_init=logical(torch_conv_init, None, None, "embed"),
                         bias_init=logical(nnx.initializers.zeros_init(), "embed"), rngs=rngs)
    self.bn = nnx.BatchNorm(out_ch, momentum=momentum, epsilon=1e-5, dtype=dtype,
                            param_dtype=jnp.float32, rngs=rngs)

  def __call__(self, x_btc, mask_bt1, *, deterministic: bool):
    return self.bn(self.conv(x_btc), use_running_average=deterministic, mask=mask_bt1)


class ResBlock(nnx.Module):
  """GELU(ConvBN(GELU(ConvBN(x, stride)), 1) + skip(x)); skip = 1x1 ConvBN when shapes change."""

  def __init__(self, in_ch: int, out_ch: int, stride: int, *, momentum: float, dtype,
               rngs: nnx.Rngs):
    kw = dict(momentum=momentum, dtype=dtype, rngs=rngs)
    self.stride = stride
    self.first = ConvBN(in_ch, out_ch, 3, stride, **kw)
    self.second = ConvBN(out_ch, out_ch, 3, 1, **kw)
    self.skip = ConvBN(in_ch, out_ch, 1, stride, **kw) if (stride != 1 or in_ch != out_ch) \
        else None

  def __call__(self, x_btc, lengths_b, *, deterministic: bool):
    out_lengths = None if lengths_b is None else (lengths_b + self.stride - 1) // self.stride
    t_out = -(-x_btc.shape[1] // self.stride)
    mask = None if lengths_b is None else (jnp.arange(t_out)[None, :, None]
                                           < out_lengths[:, None, None])
    h = jax.nn.gelu(self.first(x_btc, mask, deterministic=deterministic), approximate=False)
    h = self.second(h, mask, deterministic=deterministic)
    skip = x_btc if self.skip is None else self.skip(x_btc, mask, deterministic=deterministic)
    return jax.nn.gelu(h + skip, approximate=False), out_lengths


class SpeechModel(nnx.Module):
  """EMG [B, T, C] -> [B, ceil(T/8), num_outputs] (CTC logits or MFCC frames)."""

  def __init__(self, config: SpeechConfig, *, rngs: nnx.Rngs):
    c = config
    self.config = c
    dtype = jnp.dtype(c.dtype)
    kw = dict(momentum=c.bn_momentum, dtype=dtype, rngs=rngs)
    self.front = nnx.List([ResBlock(c.num_emg_channels, c.embed_dim, 2, **kw),
                           ResBlock(c.embed_dim, c.embed_dim, 2, **kw),
                           ResBlock(c.embed_dim, c.embed_dim, 2, **kw)])
    self.w_raw_in = dense(c.embed_dim, c.embed_dim, ("heads", "embed"), dtype=dtype, rngs=rngs)
    self.blocks = nnx.List([
        Block(c.embed_dim, c.num_heads, c.mlp_ratio, rope_mode=c.rope_mode, dropout=c.dropout,
              attn_dropout=c.attn_dropout, drop_path=c.drop_path, dtype=dtype, rngs=rngs)
        for _ in range(c.num_layers)])
    self.norm = layer_norm(c.embed_dim, dtype=dtype, rngs=rngs)
    self.w_out = dense(c.embed_dim, c.num_outputs, ("embed", "classes"), dtype=dtype, rngs=rngs)

  def check_input(self, emg) -> None:
    """Raises a ValueError naming the shape if `emg` is not [batch, samples, channels]."""
    c = self.config.num_emg_channels
    if emg.ndim != 3 or emg.shape[2] != c:
      hint = " (channels first? transpose to [B, T, C])" if emg.ndim == 3 and \
          emg.shape[1] == c else ""
      raise ValueError(f"speech model input must be [batch, samples, {c}] (channels last), got "
                       f"shape {tuple(emg.shape)}{hint}")

  def encode(self, emg_btc, lengths_b=None, *, deterministic: bool = True,
             rngs: nnx.Rngs | None = None):
    """Latent frames [B, ceil(T/8), D] after the final LayerNorm.

    `lengths_b` ([B] valid samples) keeps zero padding out of the BatchNorm statistics.
    """
    self.check_input(emg_btc)
    x = emg_btc.astype(jnp.dtype(self.config.dtype))
    lengths = lengths_b
    for block in self.front:
      x, lengths = block(x, lengths, deterministic=deterministic)
    x = self.w_raw_in(x)
    for block in self.blocks:
      x = block(x, num_channels=1, deterministic=deterministic, rngs=rngs)
    return self.norm(x)

  def __call__(self, emg_btc, lengths_b=None, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None):
    latent = self.encode(emg_btc, lengths_b, deterministic=deterministic, rngs=rngs)
    return self.w_out(latent).astype(jnp.float32)


def create_speech_model(config: SpeechConfig, *, seed: int = 0) -> SpeechModel:
  """Builds an unsharded SpeechModel (the trainer shards it from its logical axes)."""
  with nnx.use_eager_sharding(False):
    return SpeechModel(config, rngs=nnx.Rngs(seed))


def load_encoder_params(model: SpeechModel, params) -> list[str]:
  """Copies a TinyMyo parameter dict's `blocks` and `norm` into the speech model.

  Args:
    model: the speech model.
    params: a TinyMyo pure parameter dict (e.g. from `checkpointing.load_params`).

  Returns:
    The top-level TinyMyo entries that were not used (patch embedding, mask token, head).
  Raises:
    ValueError: missing entries, a different number of blocks, or a shape mismatch (named).
  """
  for key in ("blocks", "norm"):
    if key not in params:
      raise ValueError(f"pretrained parameters have no {key!r} entry; top-level keys are "
                       f"{sorted(params)}")
  given = len(params["blocks"])
  if given != model.config.num_layers:
    raise ValueError(f"pretrained encoder has {given} blocks, the speech model "
                     f"{model.config.num_layers} (set num_layers={given})")
  load_pure_params(model.blocks, params["blocks"])
  load_pure_params(model.norm, params["norm"])
  return sorted(k for k in params if k not in ("blocks", "norm"))
