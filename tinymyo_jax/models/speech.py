"""Silent-speech model: a strided residual 1-D conv front-end, then the TinyMyo Transformer blocks.

Layout: EMG [B, T, 8] at 1 kHz (channels LAST, as the reference `EMGTransformer` takes it) ->
3 ResBlocks (8->D stride 2, D->D s2, D->D s2; x8 down-sampling) -> `w_raw_in` Linear(D, D) ->
TinyMyo `Block`s over the T/8 time tokens (one "channel", so rope "flat" = time order) -> final
LayerNorm `norm` -> `w_out`: 38 CTC logits (recognition) or 26 MFCCs per frame (synthesis).
Output [B, ceil(T/8), V]. `blocks` and `norm` have TinyMyo's names and shapes, so a pretrained
encoder loads into them (`load_encoder_params`).

Train/eval switch: every call takes `deterministic`. With `deterministic=False` BatchNorm uses
the batch statistics (only over valid frames when `lengths` is given) and updates its running
averages (nnx.BatchStat variables, momentum 0.9 = PyTorch's 0.1), and dropout/DropPath are
active (needs `rngs`). With `deterministic=True` BatchNorm uses the running averages and nothing
is mutated. A training step must therefore carry the BatchStat variables out of the forward pass
and exclude them from gradients and weight decay (differentiate w.r.t. `nnx.Param` only).
"""

from __future__ import annotations

import dataclasses
import unicodedata

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from tinymyo_jax import metrics
from tinymyo_jax.models.layers import ROPE_MODES, Block, dense, layer_norm, logical
from tinymyo_jax.models.tinymyo import VARIANTS, ModelConfig, load_pure_params

# ----------------------------------------------------------------------------- text

CHARSET = "abcdefghijklmnopqrstuvwxyz0123456789|"  # '|' separates words
BLANK = 0  # CTC blank; character CHARSET[i] has id i + 1
NUM_CHAR_CLASSES = len(CHARSET) + 1  # 38
DOWNSAMPLE = 8  # three stride-2 ResBlocks
TASKS = ("recognition", "synthesis")


def normalize_text(text: str) -> str:
  """Lower-cases, strips accents, keeps a-z/0-9, and turns every other run into one space."""
  text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
  text = text.replace("'", "")  # "don't" -> "dont", as punctuation-stripping WER tools do
  kept = "".join(ch if ch in CHARSET[:-1] else " " for ch in text)
  return " ".join(kept.split())


def text_to_ids(text: str) -> list[int]:
  """Normalizes `text` and maps it to ids 1..37 (space -> '|'); no blank (0) is produced."""
  return [CHARSET.index(ch) + 1 for ch in normalize_text(text).replace(" ", "|")]


def ids_to_text(ids) -> str:
  """Maps ids back to text ('|' -> space); blanks (0) are skipped."""
  chars = []
  for i in ids:
    i = int(i)
    if not 0 <= i <= len(CHARSET):
      raise ValueError(f"character id {i} is outside 0..{len(CHARSET)}")
    if i != BLANK:
      chars.append(CHARSET[i - 1])
  return " ".join("".join(chars).replace("|", " ").split())


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


def output_length(num_samples):
  """Frames after the front-end: ceil(T / 8) (each stride-2 conv gives ceil(T / 2))."""
  for _ in range(3):
    num_samples = (num_samples + 1) // 2
  return num_samples


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


# ----------------------------------------------------------------------------- losses


def _random_shift(emg_btc, lengths_b, key, max_shift: int):
  """Drops the first r ~ U{0..max_shift} samples of every example (zero-filled at the end)."""
  b, t, _ = emg_btc.shape
  shifts = jax.random.randint(key, (b,), 0, max_shift + 1)
  padded = jnp.pad(emg_btc, ((0, 0), (0, max_shift), (0, 0)))
  shifted = jax.vmap(lambda x, r: jax.lax.dynamic_slice_in_dim(x, r, t, axis=0))(padded, shifts)
  return shifted, jnp.maximum(lengths_b - shifts, 0)


def _frame_paddings(lengths_b, num_frames: int):
  frames = jnp.minimum(output_length(lengths_b), num_frames)
  return frames, (jnp.arange(num_frames)[None, :] >= frames[:, None]).astype(jnp.float32)


def speech_loss(model: SpeechModel, batch, key, train: bool):
  """Loss of the speech model; `(model, batch, key, train) -> (loss, metrics)`.

  Batch (channels last):
    "emg": [B, T, 8] float, zero-padded after "emg_len" [B] valid samples.
    recognition: "labels" [B, U] int32 character ids 1..37 padded with 0 after "label_len" [B]
      (0 is the CTC blank, never a label, so padding is unambiguous).
    synthesis: "mfcc" [B, ceil(T/8), 26] float target frames, valid for the first
      ceil(emg_len/8) frames.

  Recognition: `optax.ctc_loss` per utterance divided by its label length, averaged over the
  batch (PyTorch `reduction="mean"`). Utterances whose frames cannot hold their labels (fewer
  than label_len + repeats) are left out of the mean (PyTorch's `zero_infinity`) and counted in
  `infeasible_fraction`. Rows with emg_len 0 (padding of an evaluation batch) count nowhere.
  Synthesis: MSE over the valid frames and all MFCC coefficients.
  """
  emg = jnp.asarray(batch["emg"])
  lengths = jnp.asarray(batch["emg_len"], jnp.int32)
  model.check_input(emg)
  shift_key, drop_key = jax.random.split(key)
  if train and model.config.max_shift:
    emg, lengths = _random_shift(emg, lengths, shift_key, model.config.max_shift)
  synthesis = model.config.task == "synthesis"
  if synthesis:
    target = jnp.asarray(batch["mfcc"], jnp.float32)
    expected = (emg.shape[0], output_length(emg.shape[1]), model.config.num_mfcc)
    if target.shape != expected:
      raise ValueError(f"mfcc target has shape {tuple(target.shape)}, the model outputs "
                       f"{expected} (ceil(T/8) frames of {model.config.num_mfcc})")
  rngs = nnx.Rngs(dropout=drop_key) if train else None
  out = model(emg, lengths, deterministic=not train, rngs=rngs)  # [B, T', V]
  frames, frame_pad = _frame_paddings(lengths, out.shape[1])
  if synthesis:
    valid = 1.0 - frame_pad
    per_frame = jnp.mean((out - target) ** 2, axis=-1)
    loss = jnp.sum(per_frame * valid) / jnp.maximum(jnp.sum(valid), 1.0)
    return loss, {"loss": loss, "mfcc_mse": loss}
  labels = jnp.asarray(batch["labels"], jnp.int32)
  label_len = jnp.asarray(batch["label_len"], jnp.int32)
  label_valid = jnp.arange(labels.shape[1])[None, :] < label_len[:, None]
  per_seq = optax.ctc_loss(out, frame_pad, labels, 1.0 - label_valid.astype(jnp.float32),
                           blank_id=BLANK)
  repeats = jnp.sum((labels[:, 1:] == labels[:, :-1]) & label_valid[:, 1:], axis=1)
  real = (lengths > 0).astype(jnp.float32)
  feasible = (frames >= label_len + repeats).astype(jnp.float32) * real
  normalized = per_seq / jnp.maximum(label_len, 1).astype(jnp.float32)
  loss = jnp.sum(normalized * feasible) / jnp.maximum(jnp.sum(feasible), 1.0)
  return loss, {"loss": loss,
                "ctc_per_utterance": jnp.sum(per_seq * feasible) / jnp.maximum(
                    jnp.sum(feasible), 1.0),
                "infeasible_fraction": 1.0 - jnp.sum(feasible) / jnp.maximum(jnp.sum(real), 1.0)}


def transcribe(logits_btv, emg_len_b, *, beam: int = 1) -> list[str]:
  """Decodes CTC logits to text: greedy for beam=1, else prefix beam search (no LM)."""
  logits = jax.device_get(logits_btv)
  frames = jax.device_get(output_length(jnp.asarray(emg_len_b)))
  texts = []
  for row, n in zip(logits, frames):
    row = row[:int(n)]
    if beam <= 1:
      ids = metrics.ctc_greedy_decode(row, blank=BLANK)
    else:
      ids = metrics.ctc_beam_search(jax.nn.log_softmax(row, axis=-1), beam=beam, blank=BLANK)
    texts.append(ids_to_text(ids))
  return texts
