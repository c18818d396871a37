"""The speech tasks (recognition, synthesis): their loss (CTC or MFCC MSE) and CTC decoding.

The model is `tinymyo_jax.models.speech.SpeechModel`; batches come from `speech_pipeline`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from tinymyo_jax import metrics
from tinymyo_jax import speech_units as units
from tinymyo_jax.models import speech


def _random_shift(emg_btc, lengths_b, key, max_shift: int):
  """Drops the first r ~ U{0..max_shift} samples of every example (zero-filled at the end)."""
  b, t, _ = emg_btc.shape
  shifts = jax.random.randint(key, (b,), 0, max_shift + 1)
  padded = jnp.pad(emg_btc, ((0, 0), (0, max_shift), (0, 0)))
  shifted = jax.vmap(lambda x, r: jax.lax.dynamic_slice_in_dim(x, r, t, axis=0))(padded, shifts)
  return shifted, jnp.maximum(lengths_b - shifts, 0)


def _frame_paddings(lengths_b, num_frames: int):
  frames = jnp.minimum(units.output_length(lengths_b), num_frames)
  return frames, (jnp.arange(num_frames)[None, :] >= frames[:, None]).astype(jnp.float32)


def speech_loss(model: speech.SpeechModel, batch, key, train: bool):
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
    expected = (emg.shape[0], units.output_length(emg.shape[1]), model.config.num_mfcc)
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
                           blank_id=units.BLANK)
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
  frames = jax.device_get(units.output_length(jnp.asarray(emg_len_b)))
  texts = []
  for row, n in zip(logits, frames):
    row = row[:int(n)]
    if beam <= 1:
      ids = metrics.ctc_greedy_decode(row, blank=units.BLANK)
    else:
      ids = metrics.ctc_beam_search(jax.nn.log_softmax(row, axis=-1), beam=beam, blank=units.BLANK)
    texts.append(units.ids_to_text(ids))
  return texts
