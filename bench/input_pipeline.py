"""Benchmarks the data builders and the grain read path (figures go to BENCHMARKS.md).

  python bench/input_pipeline.py --uci_dir=../shared/data/uci_emg --synthetic_mb=256,1024

Reports, for uci_emg and for synthetic 16-channel 2 kHz corpora (emg2pose HDF5 layout, built by the
emg2pose builder code): build throughput in MB/s of raw signal, peak RSS of the build process (at
each corpus size, to show it does not grow with the corpus), and read throughput in windows/s of a
grain pipeline (shuffle, per-window min-max to [-1, 1], batch 64) with 0 and 2 workers.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

SESSION_SECONDS = 60   # one emg2pose session is ~1 min
RATE_HZ = 2000
DTYPE = np.dtype([("time", "<f8"), ("joint_angles", "<f4", (20,)), ("emg", "<f4", (16,))])


def write_synthetic_corpus(folder: Path, megabytes: int) -> float:
  """Writes emg2pose-layout sessions holding `megabytes` of raw EMG; returns the raw MB."""
  import h5py
  from tqdm import tqdm
  folder.mkdir(parents=True, exist_ok=True)
  rows = SESSION_SECONDS * RATE_HZ
  session_mb = rows * 16 * 4 / 1e6
  count = max(1, int(np.ceil(megabytes / session_mb)))
  rng = np.random.default_rng(0)
  with (folder / "metadata.csv").open("w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["filename", "user", "session", "split"])
    for i in tqdm(range(count), desc=f"synthetic {megabytes} MB"):
      name = f"synthetic-session-{i:05d}_left"
      data = np.zeros(rows, DTYPE)
      data["time"] = np.arange(rows) / RATE_HZ
      data["emg"] = rng.standard_normal((rows, 16), dtype=np.float32)
      with h5py.File(folder / f"{name}.hdf5", "w") as out:
        out.create_group("emg2pose").create_dataset("timeseries", data=data)
      writer.writerow([name, f"user{i % 50:03d}", f"session{i:05d}",
                       "test" if i % 10 == 9 else "val" if i % 10 == 8 else "train"])
  return count * session_mb


def _build_child(name, manual_dir, data_dir, queue):
  from data_builders import build as build_lib
  start = time.perf_counter()
  build_lib.build(name, manual_dir=manual_dir, data_dir=data_dir)
  queue.put((time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


def timed_build(name: str, manual_dir: Path, data_dir: Path) -> tuple[float, float]:
  """Builds in a fresh process; returns (seconds, peak RSS in MB of that process)."""
  queue = multiprocessing.get_context("spawn").Queue()
  process = multiprocessing.get_context("spawn").Process(
      target=_build_child, args=(name, str(manual_dir), str(data_dir), queue))
  process.start()
  seconds, rss_kb = queue.get()
  process.join()
  return seconds, rss_kb / 1024


class MinMax:
  """Per-window, per-channel min-max scaling to [-1, 1] (as in pretraining)."""

  def map(self, record):
    emg = record["emg"]
    low, high = emg.min(axis=-1, keepdims=True), emg.max(axis=-1, keepdims=True)
    return ((emg - low) / (high - low + 1e-8) - 0.5) * 2


def read_throughput(name: str, data_dir: Path, workers: int, seconds: float = 10.0) -> float:
  """Returns windows/s of a shuffled, normalised, batched grain DataLoader over the train split."""
  import grain
  from data_builders import registry
  source = registry.load_split(name, "train", data_dir=data_dir)

  class Normalize(grain.transforms.Map):
    def map(self, record):
      return MinMax().map(record)

  loader = grain.DataLoader(
      data_source=source,
      sampler=grain.samplers.IndexSampler(len(source), shuffle=True, seed=0, num_epochs=None),
      operations=[Normalize(), grain.transforms.Batch(64, drop_remainder=True)],
      worker_count=workers)
  iterator = iter(loader)
  next(iterator)   # start-up (worker spawn) is not counted
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    count += next(iterator).shape[0]
  return count / (time.perf_counter() - start)


def main() -> None:
  from absl import flags
  flags.FLAGS.mark_as_parsed()   # grain workers read absl flags
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--uci_dir", default=str(Path(__file__).resolve().parents[1].parent
                                                / "shared" / "data" / "uci_emg"))
  parser.add_argument("--synthetic_mb", default="256,1024")
  parser.add_argument("--work_dir", default=None, help="scratch folder (default: a temp dir)")
  parser.add_argument("--read_seconds", type=float, default=10.0)
  args = parser.parse_args()
  work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_input_"))
  rows = []
  raw_uci_mb = 141.8   # 39 text files; 2.29 M rows x 8 channels x 4 bytes = 73 MB as float32
  seconds, rss = timed_build("uci_emg", Path(args.uci_dir), work / "tfds_uci")
  rows.append(("uci_emg", raw_uci_mb, seconds, rss, work / "tfds_uci"))
  for megabytes in (int(x) for x in args.synthetic_mb.split(",") if x):
    manual = work / f"synthetic_{megabytes}"
    raw_mb = write_synthetic_corpus(manual, megabytes)
    seconds, rss = timed_build("emg2pose", manual, work / f"tfds_{megabytes}")
    rows.append((f"synthetic 16ch 2kHz ({raw_mb:.0f} MB)", raw_mb, seconds, rss,
                 work / f"tfds_{megabytes}"))
    shutil.rmtree(manual)
  print("| corpus | raw MB | build s | build MB/s | peak RSS MB | read w/s (0 workers) | "
        "read w/s (2 workers) |")
  print("|---|---:|---:|---:|---:|---:|---:|")
  for label, raw_mb, seconds, rss, data_dir in rows:
    name = "uci_emg" if label == "uci_emg" else "emg2pose"
    reads = [read_throughput(name, data_dir, w, args.read_seconds) for w in (0, 2)]
    print(f"| {label} | {raw_mb:.0f} | {seconds:.1f} | {raw_mb / seconds:.1f} | {rss:.0f} | "
          f"{reads[0]:.0f} | {reads[1]:.0f} |")
  print(f"scratch: {work} (delete when done)")


if __name__ == "__main__":
  main()
