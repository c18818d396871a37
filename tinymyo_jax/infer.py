"""Streaming inference: classify a long EMG recording window by window with a fine-tuned model.

    python -m tinymyo_jax.infer --ckpt runs/finetune_uci/best recording.txt --hop 250 \
        --out predictions.json
    python -m tinymyo_jax.infer --ckpt CKPT emg.npy --sample_rate 2000 [--resample]

Inputs: a `.npy` array [channels, samples] (needs `--sample_rate`), a UCI "EMG data for
gestures" `.txt` file (irregular ~1 kHz rows, held onto a 1 kHz grid as the uci_emg builder does)
or a NinaPro `.mat` session (rate from its `frequency` variable). The recording gets the
checkpoint's preprocessing (`meta["data"]`): optional band-pass/notch on the whole recording at
its own rate, resampling only with `--resample`, then per-window normalization as in training.
Windows are classified in fixed-size batches by one jit-compiled function (compiled once, before
timing). Per-window latency is the batch's wall time divided by its windows; `--batch_size 1`
measures the latency of classifying each window on its own, as a live stream would.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from fractions import Fraction
from typing import Any

import jax
import numpy as np
from flax import nnx
from tqdm import tqdm

from data_builders import emg_common, ninapro
from data_builders.uci_emg import uci_emg_dataset_builder as uci
from tinymyo_jax import atomic_io, checkpointing, input_pipeline
from tinymyo_jax.models.tinymyo import create_model


class InferenceError(ValueError):
  """The checkpoint or the recording does not fit the requested inference."""


# ----------------------------------------------------------------------------- checkpoint spec


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """What the model was trained on, from a fine-tuning checkpoint's `meta["data"]`."""

  sample_rate_hz: float
  num_channels: int
  window: int
  normalization: str
  class_names: tuple[str, ...]
  band_hz: tuple[float, float] | None = None
  notch_hz: float | None = None

  @classmethod
  def from_meta(cls, meta: dict[str, Any], source: str) -> DataSpec:
    data = meta.get("data")
    if not isinstance(data, dict):
      raise InferenceError(f"checkpoint {source} has no meta['data'] (sample rate, channels, "
                           "window, normalization, class names); was it written by fine-tuning?")
    missing = [k for k in ("sample_rate_hz", "num_channels", "window", "normalization",
                           "class_names") if k not in data]
    if missing:
      raise InferenceError(f"checkpoint {source}: meta['data'] lacks {missing}")
    if data["normalization"] not in input_pipeline.NORMALIZATIONS:
      raise InferenceError(f"checkpoint {source}: unknown normalization "
                           f"{data['normalization']!r}; expected one of "
                           f"{input_pipeline.NORMALIZATIONS}")
    filt = data.get("filter") or {}
    band = filt.get("band")
    return cls(float(data["sample_rate_hz"]), int(data["num_channels"]), int(data["window"]),
               data["normalization"], tuple(str(n) for n in data["class_names"]),
               tuple(float(b) for b in band) if band else None,
               float(filt["notch"]) if filt.get("notch") else None)


class Classifier:
  """A fine-tuned classification checkpoint with a jit-compiled batched predict function.

  Loading checks the checkpoint; the compilation waits for the first prediction (`compile`), so
  a recording that does not fit is rejected before any compile.
  """

  def __init__(self, ckpt: str, *, batch_size: int = 32):
    params, config, meta = checkpointing.load_params(ckpt)
    head = getattr(config, "head", type(config).__name__)  # speech checkpoints have no `head`
    if head != "classification":
      raise InferenceError(f"checkpoint {ckpt} has a {head!r} head; streaming inference "
                           "needs a fine-tuned classification checkpoint")
    self.spec = DataSpec.from_meta(meta, ckpt)
    if len(self.spec.class_names) != config.num_outputs:
      raise InferenceError(f"checkpoint {ckpt}: {len(self.spec.class_names)} class names but "
                           f"the head has {config.num_outputs} outputs")
    if self.spec.num_channels > config.num_channels:
      raise InferenceError(f"checkpoint {ckpt}: data has {self.spec.num_channels} channels but "
                           f"the head fuses {config.num_channels}")
    if batch_size < 1:
      raise InferenceError(f"batch_size must be positive, got {batch_size}")
    self.config, self.meta, self.batch_size = config, meta, batch_size
    stats = (meta.get("input_stats") or [None])[0]
    try:
      self._prepare = input_pipeline.PrepareWindow(self.spec.normalization, config.num_channels,
                                                   (), stats)
    except ValueError as e:
      raise InferenceError(f"checkpoint {ckpt}: {e}") from e
    self.task = meta.get("task")
    graphdef, state = nnx.split(create_model(config, params=params))

    def predict(state, x_bct):
      return jax.nn.softmax(nnx.merge(graphdef, state)(x_bct, deterministic=True), axis=-1)

    self._state = state
    self._predict = jax.jit(predict)
    self.compile_s: float | None = None

  def compile(self) -> float:
    """Compiles the predict function for the fixed batch shape (once); returns the seconds."""
    if self.compile_s is None:
      start = time.perf_counter()
      self._predict(self._state, self._zeros()).block_until_ready()
      self.compile_s = time.perf_counter() - start
    return self.compile_s

  def _zeros(self) -> np.ndarray:
    return np.zeros((self.batch_size, self.config.num_channels, self.spec.window), np.float32)

  def prepare_window(self, x_ct: np.ndarray) -> np.ndarray:
    """Normalizes one raw window [C, window] and zero-pads channels, as the training pipeline."""
    return self._prepare.map({"emg": x_ct})["emg"]

  def predict_batch(self, windows_nct: np.ndarray) -> tuple[np.ndarray, float]:
    """Class probabilities [n, K] of up to `batch_size` prepared windows, and the wall time (s)."""
    self.compile()  # never time the compilation
    n = windows_nct.shape[0]
    batch = self._zeros()
    batch[:n] = windows_nct
    start = time.perf_counter()
    probs = np.asarray(self._predict(self._state, batch).block_until_ready())
    return probs[:n], time.perf_counter() - start


# ----------------------------------------------------------------------------- recordings


@dataclasses.dataclass
class Recording:
  """A whole recording: emg [C, T] at `rate_hz`, optional per-sample class ids (-1 = none)."""

  emg_ct: np.ndarray
  rate_hz: float
  source: str
  labels_t: np.ndarray | None = None
  label_names: tuple[str, ...] | None = None


def read_recording(path: str, sample_rate: float | None = None) -> Recording:
  """Reads a `.npy` [channels, samples], a UCI `.txt` or a NinaPro `.mat` recording."""
  if not os.path.isfile(path):
    raise InferenceError(f"input file {path!r} does not exist")
  suffix = os.path.splitext(path)[1].lower()
  if suffix == ".npy":
    if sample_rate is None:
      raise InferenceError(f"{path}: a .npy array needs --sample_rate (Hz)")
    emg = _load_npy(path)
    if emg.ndim != 2:
      raise InferenceError(f"{path}: expected an array [channels, samples], got shape "
                           f"{emg.shape}")
    emg_common.check_finite(emg, path)
    return Recording(emg.astype(np.float64), float(sample_rate), path)
  if suffix == ".txt":
    rec = _read_uci(path)
  elif suffix == ".mat":
    rec = _read_ninapro(path)
  else:
    raise InferenceError(f"{path}: unsupported file type {suffix!r}; expected .npy, a UCI .txt "
                         "or a NinaPro .mat")
  if sample_rate is not None and not math.isclose(sample_rate, rec.rate_hz):
    raise InferenceError(f"{path}: --sample_rate {sample_rate:g} Hz contradicts the file's "
                         f"{rec.rate_hz:g} Hz")
  return rec


def _load_npy(path: str) -> np.ndarray:
  """The real-valued array in a `.npy` file; InferenceError naming the file for anything else."""
  with open(path, "rb") as handle:
    magic = handle.read(6)
  if magic != b"\x93NUMPY":
    raise InferenceError(f"{path}: not a .npy array file (no NumPy header); expected an array "
                         "[channels, samples] written by numpy.save")
  try:
    emg = np.load(path, allow_pickle=False)
  except (ValueError, OSError, EOFError) as error:
    first = next((line for line in str(error).splitlines() if line.strip()), "")
    raise InferenceError(f"{path}: unreadable .npy array ({type(error).__name__}: "
                         f"{first})") from error
  if emg.dtype.kind not in "biuf":
    raise InferenceError(f"{path}: array of dtype {emg.dtype}, expected real numbers")
  return emg


def _read_uci(path: str) -> Recording:
  with open(path, "rb") as handle:
    time_ms, emg_tc, classes = uci.parse_recording(handle.read(), path)
  # The builder's own hold and scaling; filtering and resampling happen later, from the ckpt.
  raw = emg_common.EmgBuilderConfig(name="raw", sample_rate_hz=uci.GRID_RATE_HZ)
  emg_ct, classes = uci.process_recording(time_ms, emg_tc, classes, raw)
  labels = np.where((classes >= 1) & (classes <= len(uci.CLASS_NAMES)), classes - 1, -1)
  return Recording(emg_ct, uci.GRID_RATE_HZ, path, labels, uci.CLASS_NAMES)


def _read_ninapro(path: str) -> Recording:
  emg = np.asarray(ninapro.load_mat(path, ("emg",))["emg"], np.float64)
  if emg.ndim != 2:
    raise InferenceError(f"{path}: emg has shape {emg.shape}, expected [samples, channels]")
  emg_common.check_finite(emg, f"{path} (emg)")
  try:
    rate = float(np.asarray(ninapro.load_mat(path, ("frequency",))["frequency"]).reshape(-1)[0])
  except emg_common.CorpusError as error:
    raise InferenceError(f"{path}: no 'frequency' variable; convert it to .npy [channels, "
                         "samples] and pass --sample_rate") from error
  return Recording(emg.T, rate, path)


def prepare_recording(rec: Recording, spec: DataSpec, *, resample: bool = False,
                      channels: list[int] | None = None) -> Recording:
  """Selects channels, filters at the recording's own rate, then resamples (if allowed).

  Raises:
    InferenceError: channel count, sampling rate or length does not fit the checkpoint.
  """
  emg = rec.emg_ct
  if channels is not None:
    bad = [c for c in channels if not 0 <= c < emg.shape[0]]
    if bad:
      raise InferenceError(f"{rec.source}: --channels {bad} outside 0..{emg.shape[0] - 1}")
    emg = emg[channels]
  if emg.shape[0] != spec.num_channels:
    raise InferenceError(f"{rec.source}: recording has {emg.shape[0]} channels, the checkpoint "
                         f"expects {spec.num_channels} (pick them with --channels)")
  ratio = Fraction(spec.sample_rate_hz / rec.rate_hz).limit_denominator(1000)
  if ratio != 1 and not resample:
    raise InferenceError(f"{rec.source}: recording is sampled at {rec.rate_hz:g} Hz, the "
                         f"checkpoint at {spec.sample_rate_hz:g} Hz; pass --resample to convert")
  if spec.band_hz or spec.notch_hz:
    sos = emg_common.bandpass_notch_sos(rec.rate_hz, spec.band_hz, spec.notch_hz)
    emg = emg_common.filter_recording(emg, sos)
  labels = rec.labels_t
  if ratio != 1:
    emg = emg_common.resample_rational(emg, ratio.numerator, ratio.denominator)
    if labels is not None:  # nearest earlier source sample of each output sample
      index = np.floor(np.arange(emg.shape[1]) / float(ratio)).astype(np.int64)
      labels = labels[np.minimum(index, labels.size - 1)]
  if emg.shape[1] < spec.window:
    seconds = emg.shape[1] / spec.sample_rate_hz
    raise InferenceError(
        f"{rec.source}: recording has {emg.shape[1]} samples ({seconds:g} s) at "
        f"{spec.sample_rate_hz:g} Hz, shorter than one window of {spec.window} samples")
  return Recording(emg, spec.sample_rate_hz, rec.source, labels, rec.label_names)


# ----------------------------------------------------------------------------- classification


def classify(classifier: Classifier, rec: Recording, *, hop: int,
             progress: bool = True) -> dict[str, Any]:
  """Classifies every window (`hop` samples apart) of a prepared recording.

  Returns:
    {"windows": [{"index", "start_s", "end_s", "class", "class_id", "probability",
    "latency_ms", ["true_class"]}], "summary": {...}}. `true_class` is set when the recording has
    labels and the window lies inside one labelled gesture.
  """
  spec = classifier.spec
  if hop < 1:
    raise InferenceError(f"hop must be a positive number of samples, got {hop}")
  starts = emg_common.window_starts(rec.emg_ct.shape[1], spec.window, hop)
  classifier.compile()
  windows, latencies = [], []
  batches = range(0, len(starts), classifier.batch_size)
  for first in tqdm(batches, desc="classifying", unit="batch", disable=not progress,
                    file=sys.stderr):
    chunk = starts[first:first + classifier.batch_size]
    prepared = np.stack([classifier.prepare_window(rec.emg_ct[:, s:s + spec.window])
                         for s in chunk])
    probs, seconds = classifier.predict_batch(prepared)
    latency_ms = 1000.0 * seconds / len(chunk)
    for s, p in zip(chunk, probs):
      k = int(p.argmax())
      row = {"index": len(windows), "start_s": float(s / rec.rate_hz),
             "end_s": float((s + spec.window) / rec.rate_hz), "class": spec.class_names[k],
             "class_id": k, "probability": float(p[k]), "latency_ms": latency_ms}
      if rec.labels_t is not None:
        row["true_class"] = _window_label(rec, int(s), spec.window)
      windows.append(row)
      latencies.append(latency_ms)
  duration_s = rec.emg_ct.shape[1] / rec.rate_hz
  lat = np.asarray(latencies)
  summary = {"source": rec.source, "task": classifier.task, "num_windows": len(windows),
             "window": spec.window, "hop": hop, "sample_rate_hz": rec.rate_hz,
             "duration_s": duration_s, "batch_size": classifier.batch_size,
             "compile_s": classifier.compile_s, "latency_ms_mean": float(lat.mean()),
             "latency_ms_p50": float(np.percentile(lat, 50)),
             "latency_ms_p95": float(np.percentile(lat, 95)),
             "real_time_factor": float(lat.sum() / 1000.0 / duration_s),
             "device": str(jax.devices()[0].platform)}
  labelled = [w for w in windows if w.get("true_class") is not None]
  if labelled:
    summary["labelled_windows"] = len(labelled)
    summary["accuracy"] = float(np.mean([w["class"] == w["true_class"] for w in labelled]))
  return {"windows": windows, "summary": summary}


def _window_label(rec: Recording, start: int, window: int) -> str | None:
  labels = rec.labels_t[start:start + window]
  if labels.size and labels[0] >= 0 and (labels == labels[0]).all():
    return rec.label_names[int(labels[0])]
  return None


def run(ckpt: str, path: str, *, sample_rate: float | None = None, hop: int | None = None,
        resample: bool = False, channels: list[int] | None = None, batch_size: int = 32,
        progress: bool = True) -> dict[str, Any]:
  """Loads the checkpoint and the recording and classifies it (default hop: window // 4)."""
  classifier = Classifier(ckpt, batch_size=batch_size)
  rec = prepare_recording(read_recording(path, sample_rate), classifier.spec, resample=resample,
                          channels=channels)
  hop = classifier.spec.window // 4 if hop is None else hop
  result = classify(classifier, rec, hop=hop, progress=progress)
  result["summary"]["checkpoint"] = os.path.abspath(ckpt)
  return result


def format_table(result: dict[str, Any]) -> str:
  """A fixed-width text table of the per-window predictions plus a summary line."""
  labelled = any("true_class" in w for w in result["windows"])
  head = f"{'#':>5} {'start_s':>9} {'end_s':>9} {'class':<18} {'prob':>6} {'lat_ms':>8}"
  lines = [head + (f" {'true':<18}" if labelled else "")]
  for w in result["windows"]:
    line = (f"{w['index']:>5} {w['start_s']:>9.3f} {w['end_s']:>9.3f} {w['class']:<18} "
            f"{w['probability']:>6.3f} {w['latency_ms']:>8.3f}")
    lines.append(line + (f" {w.get('true_class') or '-':<18}" if labelled else ""))
  s = result["summary"]
  tail = (f"{s['num_windows']} windows of {s['window']} samples, hop {s['hop']}, "
          f"{s['duration_s']:.2f} s at {s['sample_rate_hz']:g} Hz; latency/window mean "
          f"{s['latency_ms_mean']:.3f} ms p95 {s['latency_ms_p95']:.3f} ms (batch "
          f"{s['batch_size']}, {s['device']}); compile {s['compile_s']:.2f} s")
  if "accuracy" in s:
    tail += f"; accuracy {s['accuracy']:.4f} on {s['labelled_windows']} labelled windows"
  return "\n".join(lines + [tail])


def write_json(result: dict[str, Any], path: str) -> None:
  """Writes `result` as JSON atomically."""
  atomic_io.write_json(path, result, indent=1)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m tinymyo_jax.infer",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("input", help=".npy [channels, samples], UCI .txt or NinaPro .mat")
  parser.add_argument("--ckpt", required=True, help="fine-tuned classification checkpoint dir")
  parser.add_argument("--sample_rate", type=float, help="Hz; required for .npy input")
  parser.add_argument("--hop", type=int, help="samples between window starts (default window/4)")
  parser.add_argument("--resample", action="store_true",
                      help="resample to the checkpoint's rate instead of refusing")
  parser.add_argument("--channels", type=lambda s: [int(c) for c in s.split(",")],
                      help="comma-separated channel indices to keep, e.g. 0,1,2,3,4,5,6,7")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--out", help="write all predictions and the summary as JSON here")
  parser.add_argument("--quiet", action="store_true", help="print only the summary line")
  args = parser.parse_args(argv)
  try:
    result = run(args.ckpt, args.input, sample_rate=args.sample_rate, hop=args.hop,
                 resample=args.resample, channels=args.channels, batch_size=args.batch_size,
                 progress=not args.quiet)
  except (InferenceError, checkpointing.CheckpointError, emg_common.CorpusError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  table = format_table(result)
  print(table.splitlines()[-1] if args.quiet else table)
  if args.out:
    write_json(result, args.out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
