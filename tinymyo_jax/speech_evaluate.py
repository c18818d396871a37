"""Test-split evaluation of a silent-speech checkpoint: CER/WER or MFCC MSE, plus predictions.

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

import os
from typing import Any

import jax
import numpy as np
import tqdm
from flax import nnx

from tinymyo_jax import (atomic_io, input_pipeline, metrics, speech_pipeline, speech_task,
                         speech_units, train)
from tinymyo_jax.models import factory


def _forward_fn(model):
  graphdef, state = nnx.split(model)
  forward = jax.jit(lambda s, x, n: nnx.merge(graphdef, s)(x, n, deterministic=True))
  return lambda emg, lengths: np.asarray(forward(state, emg, lengths))


def evaluate_checkpoint(config, state, model_cfg, meta, out_dir: str) -> dict[str, Any]:
  """Evaluates a loaded speech checkpoint (`checkpointing.load_params` output) on the test split.

  Raises:
    ValueError: the checkpoint's model is not a speech model of the config's task.
  """
  task = train.SPEECH_TASKS[config.task]
  held = getattr(model_cfg, "task", type(model_cfg).__name__)
  if held != task:
    raise ValueError(f"checkpoint holds a {held!r} model, the config's task {config.task!r} "
                     f"needs a speech {task!r} model")
  forward = _forward_fn(factory.create(model_cfg, state=state))
  source = train.data_sources(config)
  batches = speech_pipeline.make_dataset(
      source, config.data.test_split, data_dir=config.data.data_dir,
      batch_size=config.batch_size, seed=0, train=False, task=task,
      normalization=config.data.normalization, stats=meta.get("input_stats"),
      bucket=config.data.get("bucket", speech_pipeline.DEFAULT_BUCKET), with_reference=True)
  os.makedirs(out_dir, exist_ok=True)
  if task == "recognition":
    return _recognition(forward, batches, config.finetune.get("beam_width", 8), out_dir)
  grid = speech_pipeline.mfcc_grid(input_pipeline.source_metadata(source[0],
                                                                  config.data.data_dir))
  return _synthesis(forward, batches, grid, out_dir)


def _real_rows(batch):
  return np.flatnonzero(batch["emg_len"] > 0)


def _recognition(forward, batches, beam_width: int, out_dir: str) -> dict[str, Any]:
  refs, greedy, beam = [], [], []
  for batch in tqdm.tqdm(batches, desc="test (decoding)", unit="batch", leave=False):
    rows = _real_rows(batch)
    logits = forward(batch["emg"], batch["emg_len"])[rows]
    lengths = batch["emg_len"][rows]
    refs += list(batch["transcript"][rows])
    greedy += speech_task.transcribe(logits, lengths)
    beam += speech_task.transcribe(logits, lengths, beam=beam_width)
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


def _synthesis(forward, batches, grid, out_dir: str) -> dict[str, Any]:
  final = os.path.join(out_dir, "mfcc_pred")
  sq_err = count = sq_err_model = count_model = 0.0
  index = 0
  with atomic_io.atomic_dir(final) as scratch:
    for batch in tqdm.tqdm(batches, desc="test (MFCC)", unit="batch", leave=False):
      rows = _real_rows(batch)
      out = forward(batch["emg"], batch["emg_len"])
      for i in rows:
        frames = speech_units.output_length(int(batch["emg_len"][i]))
        pred = out[i, :frames]
        sq_err_model += float(np.sum((pred - batch["mfcc"][i, :frames]) ** 2))
        count_model += pred.size
        ref = batch["mfcc_ref"][i]
        corpus = speech_pipeline.to_corpus_frames(pred, len(ref), grid)
        sq_err += float(np.sum((corpus - ref) ** 2))
        count += ref.size
        np.save(os.path.join(scratch, f"{index:05d}.npy"), corpus)
        index += 1
  scalars = {"mfcc_mse": sq_err / count, "mfcc_mse_model_grid": sq_err_model / count_model}
  return {"scalars": scalars, "details": dict(scalars), "predictions": final,
          "num_examples": index}
