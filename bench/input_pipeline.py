"""Benchmarks the corpus builders and the grain read pipeline (figures go to BENCHMARKS.md).

  python bench/input_pipeline.py [--uci_dir=../shared/data/uci_emg] [--synthetic_mb=300,1200]
      [--beam_mb=60,240] [--read_seconds=10] [--train_step]

For uci_emg and for synthetic 16-channel 2 kHz corpora in emg2pose's HDF5 layout (built by the
emg2pose builder code), reports: build throughput in MB of raw signal per second, peak RSS of the
build process (one fresh process per build, at each corpus size, to show memory does not grow with
the corpus), and read throughput in windows/s of the pretraining pipeline
(`tinymyo_jax.input_pipeline.make_dataset`: shuffle, min-max per window, pad to 16 channels,
batch) with 0 and 2 grain worker processes. Read throughput is measured on uci_emg and on the
largest synthetic corpus. `--beam_mb` builds synthetic corpora with Beam's DirectRunner too;
`--train_step` runs `bench/train_step.py` for the windows/s the pretraining step consumes.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SESSION_SECONDS = 60   # one emg2pose session is ~1 min
RATE_HZ = 2000
CHANNELS = 16
DTYPE = np.dtype([("time", "<f8"), ("joint_angles", "<f4", (20,)), ("emg", "<f4", (CHANNELS,))])
BEAM_OPTIONS = "runner=DirectRunner"


def write_synthetic_corpus(folder: Path, megabytes: int) -> float:
  """Writes emg2pose-layout sessions holding `megabytes` of raw float32 EMG; returns the raw MB."""
  import h5py
  from tqdm import tqdm
  folder.mkdir(parents=True, exist_ok=True)
  rows = SESSION_SECONDS * RATE_HZ
  session_mb = rows * CHANNELS * 4 / 1e6
  count = max(1, int(np.ceil(megabytes / session_mb)))
  rng = np.random.default_rng(0)
  with (folder / "metadata.csv").open("w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["filename", "user", "session", "split"])
    for i in tqdm(range(count), desc=f"synthetic {megabytes} MB"):
      name = f"synthetic-session-{i:05d}_left"
      data = np.zeros(rows, DTYPE)
      data["time"] = np.arange(rows) / RATE_HZ
      data["emg"] = rng.standard_normal((rows, CHANNELS), dtype=np.float32)
      with h5py.File(folder / f"{name}.hdf5", "w") as out:
        out.create_group("emg2pose").create_dataset("timeseries", data=data)
      writer.writerow([name, f"user{i % 50:03d}", f"session{i:05d}",
                       "test" if i % 10 == 9 else "val" if i % 10 == 8 else "train"])
  return count * session_mb


def uci_raw_mb(uci_dir: Path) -> float:
  """Raw signal of the UCI corpus as float32 MB (8 channels x rows of its text files)."""
  from data_builders.uci_emg import uci_emg_dataset_builder as uci
  rows = sum(len(r.read().splitlines()) - 1 for r in uci.find_recordings(uci_dir))
  return rows * 8 * 4 / 1e6


def _build_child(name, manual_dir, data_dir, beam, queue):
  from data_builders import build as build_lib
  start = time.perf_counter()
  build_lib.build(name, manual_dir=manual_dir, data_dir=data_dir,
                  beam_pipeline_options=BEAM_OPTIONS if beam else None)
  peak_kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
  queue.put((time.perf_counter() - start, peak_kb))


def timed_build(name: str, manual_dir: Path, data_dir: Path, beam: bool = False):
  """Builds in a fresh process; returns (seconds, peak RSS in MB of that process)."""
  context = multiprocessing.get_context("spawn")
  queue = context.Queue()
  process = context.Process(target=_build_child,
                            args=(name, str(manual_dir), str(data_dir), beam, queue))
  process.start()
  process.join()
  if process.exitcode != 0:
    raise RuntimeError(f"build of {name} from {manual_dir} failed (exit {process.exitcode})")
  seconds, peak_kb = queue.get()
  return seconds, peak_kb / 1024


def read_throughput(name: str, data_dir: Path, workers: int, seconds: float,
                    batch_size: int) -> float:
  """Returns windows/s of the pretraining pipeline over the train split of `name`."""
  import grain
  from tinymyo_jax import input_pipeline
  dataset = input_pipeline.make_dataset(
      [input_pipeline.Source(name)], "train", data_dir=str(data_dir), batch_size=batch_size,
      seed=0, train=True, normalization="minmax", num_channels=CHANNELS)
  if workers:
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
  iterator = iter(dataset)
  next(iterator)   # start-up (worker spawn, first reads) is not counted
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    batch = next(iterator)
    assert batch["emg"].shape == (batch_size, CHANNELS, batch["emg"].shape[-1])
    count += batch_size
  return count / (time.perf_counter() - start)


def train_step_examples_per_s() -> dict:
  """Runs bench/train_step.py (16 x 1000 windows, batch 32) and returns its JSON result."""
  command = [sys.executable, str(REPO / "bench" / "train_step.py"), "--channels", "16",
             "--samples", "1000", "--batch", "32", "--steps", "3"]
  output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
  return json.loads(output[output.index("{"):])


def run_benchmarks(args: argparse.Namespace, work: Path) -> None:
  """Builds, reads and prints the tables; scratch files go under `work`."""
  builds, readable = [], []
  uci_dir = Path(args.uci_dir)
  seconds, rss = timed_build("uci_emg", uci_dir, work / "tfds_uci")
  builds.append(("uci_emg", "generator", uci_raw_mb(uci_dir), seconds, rss))
  readable.append(("uci_emg", "uci_emg", work / "tfds_uci"))
  sizes = [int(x) for x in args.synthetic_mb.split(",") if x]
  beam_sizes = [int(x) for x in args.beam_mb.split(",") if x]
  for megabytes in sorted(set(sizes + beam_sizes)):
    manual = work / f"synthetic_{megabytes}"
    raw_mb = write_synthetic_corpus(manual, megabytes)
    label = f"synthetic 16 ch 2 kHz, {raw_mb:.0f} MB"
    for beam in [False] * (megabytes in sizes) + [True] * (megabytes in beam_sizes):
      data_dir = work / f"tfds_{megabytes}_{'beam' if beam else 'gen'}"
      seconds, rss = timed_build("emg2pose", manual, data_dir, beam=beam)
      builds.append((label, "Beam DirectRunner" if beam else "generator", raw_mb, seconds, rss))
      print(builds[-1], flush=True)
      if sizes and megabytes == max(sizes) and not beam:
        readable.append((label, "emg2pose", data_dir))
      else:
        shutil.rmtree(data_dir)
    shutil.rmtree(manual)
  print("\n| corpus | build path | raw MB | build s | build MB/s | peak RSS MB |")
  print("|---|---|---:|---:|---:|---:|")
  for label, path, raw_mb, seconds, rss in builds:
    print(f"| {label} | {path} | {raw_mb:.0f} | {seconds:.1f} | {raw_mb / seconds:.1f} | "
          f"{rss:.0f} |")
  print(f"\n| corpus | read windows/s, 0 workers | read windows/s, 2 workers |  (batch "
        f"{args.batch}, {args.read_seconds:g} s each)")
  print("|---|---:|---:|")
  for label, name, data_dir in readable:
    reads = [read_throughput(name, data_dir, w, args.read_seconds, args.batch) for w in (0, 2)]
    print(f"| {label} | {reads[0]:.0f} | {reads[1]:.0f} |", flush=True)
  if args.train_step:
    result = train_step_examples_per_s()
    print(f"\npretraining step consumes {result['examples_per_s']} windows/s "
          f"({result['ms_per_step_median']} ms per batch of {result['batch']})")
  print(f"load average at end {os.getloadavg()}")


def main() -> None:
  from absl import flags
  flags.FLAGS.mark_as_parsed()   # grain reads absl flags, also in its workers
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--uci_dir", default=str(REPO.parent / "shared" / "data" / "uci_emg"))
  parser.add_argument("--synthetic_mb", default="300,1200",
                      help="comma-separated sizes of the synthetic corpora in MB")
  parser.add_argument("--beam_mb", default="", help="sizes in MB of synthetic corpora to build "
                      f"with Beam ({BEAM_OPTIONS}) as well; its memory grows with the corpus")
  parser.add_argument("--work_dir", default=None, help="scratch folder (default: a temp dir, "
                      "deleted at the end)")
  parser.add_argument("--read_seconds", type=float, default=10.0)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--train_step", action="store_true",
                      help="also time the pretraining step (bench/train_step.py)")
  args = parser.parse_args()
  if not Path(args.uci_dir).is_dir():
    parser.error(f"--uci_dir {args.uci_dir} does not exist (a folder with the UCI-EMG zip, "
                 "e.g. data_builders/uci_emg/sample)")
  work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_input_"))
  print(f"machine: {os.cpu_count()} CPUs, load average at start {os.getloadavg()}")
  try:
    run_benchmarks(args, work)
  finally:
    if args.work_dir is None:
      shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
