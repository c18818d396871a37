"""The speech tasks (Gaddy silent speech): recognition (CTC over characters) and synthesis (MFCC
regression), their loss, CTC decoding and test evaluation.

The model is `tinymyo_jax.models.speech.SpeechModel`; batches of whole utterances come from
`speech_pipeline`.

Test evaluation:

Recognition: CTC greedy and prefix beam-search decoding (no language model) -> corpus CER and
WER (`metrics.error_rates`; `cer`/`wer` are the beam-search figures), and `transcripts.tsv` in the
run folder (index, reference, greedy, beam).
Synthesis: MSE against the corpus MFCCs on their own 10 ms grid (`mfcc_mse`; the predictions are
interpolated back onto it) and on the model's 8 ms frame grid (`mfcc_mse_model_grid`, the
training loss), and one file per test utterance, `mfcc_pred/<index>.npy`: float32 [frames, 26],
frame g = the 25 ms window starting at 10 g ms, `frames` = the corpus MFCC count of that utterance
(<index> = position in the test split, 5 digits). This is the [frames, features] layout a
HiFi-GAN vocoder conditioned on these MFCCs loads (`np.load(path).T[None]` gives its
[1, 26, frames] input). Both outputs are written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm
from flax import nnx

from tinymyo_jax import atomic_io, input_pipeline, metrics, multihost, speech_pipeline
from tinymyo_jax import speech_units as units
from tinymyo_jax.models import factory, speech
from tinymyo_jax.tasks import core


# ----------------------------------------------------------------------------- loss and decoding


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


# ----------------------------------------------------------------------------- test evaluation


def _forward_fn(model):
  graphdef, state = nnx.split(model)
  forward = jax.jit(lambda s, x, n: nnx.merge(graphdef, s)(x, n, deterministic=True))
  return lambda emg, lengths: np.asarray(forward(state, emg, lengths))


def evaluate_test(config, state, model_cfg, meta, out_dir: str, *, task: str) -> dict[str, Any]:
  """Evaluates a loaded speech checkpoint (`checkpointing.load_params` output) on the test split.

  With N processes each runs the model on its rows of every global batch (the training
  pipeline's sharding) and decodes them; the results are gathered in split order, so every
  process computes the whole split's metrics, as one process would.

  Raises:
    ValueError: the checkpoint's model is not a speech model of the config's task.
  """
  held = getattr(model_cfg, "task", type(model_cfg).__name__)
  if held != task:
    raise ValueError(f"checkpoint holds a {held!r} model, the config's task {config.task!r} "
                     f"needs a speech {task!r} model")
  forward = _forward_fn(factory.create(model_cfg, state=state))
  source = input_pipeline.config_sources(config)
  process = (jax.process_index(), jax.process_count())
  batches = speech_pipeline.make_dataset(
      source, config.data.test_split, data_dir=config.data.data_dir,
      batch_size=config.batch_size, seed=0, train=False, task=task,
      normalization=config.data.normalization, stats=meta.get("input_stats"),
      bucket=config.data.get("bucket", speech_pipeline.DEFAULT_BUCKET), with_reference=True,
      process=process)
  os.makedirs(out_dir, exist_ok=True)
  if task == "recognition":
    return _recognition(forward, batches, config.finetune.get("beam_width", 8), out_dir, process)
  grid = speech_pipeline.mfcc_grid(input_pipeline.source_metadata(source[0],
                                                                  config.data.data_dir))
  return _synthesis(forward, batches, grid, out_dir, process)


def _real_rows(batch):
  return np.flatnonzero(batch["emg_len"] > 0)


def _split_order(positions: list[int]) -> np.ndarray:
  """The order that sorts every process's gathered rows by their place in the test split."""
  gathered, = multihost.gather_rows(np.asarray(positions, np.int64))
  return np.argsort(gathered, kind="stable")


def _positions(batch_index: int, rows: np.ndarray, batch_size: int, process) -> list[int]:
  """Places in the split of `rows` of this process's share of global batch `batch_index`."""
  index, count = process
  return [(batch_index * count + index) * batch_size + int(r) for r in rows]


def _recognition(forward, batches, beam_width: int, out_dir: str, process) -> dict[str, Any]:
  positions, refs, greedy, beam = [], [], [], []
  for b, batch in enumerate(tqdm.tqdm(batches, desc="test (decoding)", unit="batch",
                                      leave=False)):
    rows = _real_rows(batch)
    logits = forward(batch["emg"], batch["emg_len"])[rows]
    lengths = batch["emg_len"][rows]
    positions += _positions(b, rows, len(batch["emg_len"]), process)
    refs += list(batch["transcript"][rows])
    greedy += transcribe(logits, lengths)
    beam += transcribe(logits, lengths, beam=beam_width)
  order = _split_order(positions)
  refs, greedy, beam = ([texts[i] for i in order] for texts in (
      multihost.gather_texts(refs), multihost.gather_texts(greedy), multihost.gather_texts(beam)))
  rates_greedy = metrics.error_rates(refs, greedy)
  rates_beam = metrics.error_rates(refs, beam)
  path = os.path.join(out_dir, "transcripts.tsv")
  atomic_io.write_text(path, "index\treference\tgreedy\tbeam\n" + "".join(
      f"{i}\t" + "\t".join(row) + "\n" for i, row in enumerate(zip(refs, greedy, beam))))
  scalars = {"cer": rates_beam["cer"], "wer": rates_beam["wer"],
             "cer_greedy": rates_greedy["cer"], "wer_greedy": rates_greedy["wer"]}
  return {"scalars": scalars, "details": {"greedy": rates_greedy, "beam": rates_beam,
                                          "beam_width": beam_width},
          "predictions": path, "num_examples": len(refs)}


def _synthesis(forward, batches, grid, out_dir: str, process) -> dict[str, Any]:
  positions, preds, targets, corpus_preds, refs = [], [], [], [], []
  num_mfcc = None
  for b, batch in enumerate(tqdm.tqdm(batches, desc="test (MFCC)", unit="batch", leave=False)):
    rows = _real_rows(batch)
    num_mfcc = batch["mfcc"].shape[-1]
    out = forward(batch["emg"], batch["emg_len"])
    positions += _positions(b, rows, len(batch["emg_len"]), process)
    for i in rows:
      frames = units.output_length(int(batch["emg_len"][i]))
      preds.append(out[i, :frames])
      targets.append(batch["mfcc"][i, :frames])
      refs.append(batch["mfcc_ref"][i])
      corpus_preds.append(speech_pipeline.to_corpus_frames(preds[-1], len(refs[-1]), grid))
  order = _split_order(positions)
  preds, targets, corpus_preds, refs = ([arrays[i] for i in order] for arrays in (
      multihost.gather_ragged(a, (num_mfcc,)) for a in (preds, targets, corpus_preds, refs)))
  sq_err = count = sq_err_model = count_model = 0.0
  final = os.path.join(out_dir, "mfcc_pred")
  with atomic_io.atomic_dir(final) as scratch:
    for index, (pred, target, corpus, ref) in enumerate(zip(preds, targets, corpus_preds, refs)):
      sq_err_model += float(np.sum((pred - target) ** 2))
      count_model += pred.size
      sq_err += float(np.sum((corpus - ref) ** 2))
      count += ref.size
      np.save(os.path.join(scratch, f"{index:05d}.npy"), corpus)
  scalars = {"mfcc_mse": sq_err / count, "mfcc_mse_model_grid": sq_err_model / count_model}
  return {"scalars": scalars, "details": dict(scalars), "predictions": final,
          "num_examples": len(refs)}


# ----------------------------------------------------------------------------- the two task types


def _model_config(config, *, task: str):
  m = config.model
  return speech.SpeechConfig.from_variant(
      m.variant, task, num_layers=core.num_layers(config), rope_mode=m.rope_mode,
      dtype=core.compute_dtype(config), dropout=m.dropout, attn_dropout=m.attn_dropout,
      drop_path=m.drop_path, num_emg_channels=m.num_channels)


def _dataset_fn(config, sources, batch_size: int, stats, *, task: str):
  d = config.data
  return functools.partial(
      speech_pipeline.make_dataset, sources, data_dir=d.data_dir, batch_size=batch_size,
      task=task, normalization=d.normalization, stats=stats, max_len=d.get("max_len", 0),
      bucket=d.get("bucket", speech_pipeline.DEFAULT_BUCKET))


def _task(name: str, task: str) -> core.Task:
  return core.Task(name=name, model_config=functools.partial(_model_config, task=task),
                   loss_fn=lambda config: speech_loss,  # the model's config says which loss
                   dataset_fn=functools.partial(_dataset_fn, task=task),
                   evaluate=functools.partial(evaluate_test, task=task),
                   lr_scale_fn=core.finetune_lr_scale_fn,
                   stats_records=speech_pipeline.STATS_UTTERANCES, augmentable=False)


RECOGNITION = _task("speech_recognition", "recognition")
SYNTHESIS = _task("speech_synthesis", "synthesis")
