"""Several JAX processes on one machine (CPU devices, gloo collectives) train exactly like one.

Each process simulates 8 / N devices, so the global (2, 4) mesh and the global batch are those of
the single-process 8-device run; the losses must match it to float tolerance.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO
from tinymyo_jax import checkpointing, reporting

SMOKE = ["-m", "tinymyo_jax.main", "--config=configs/pretrain.py:smoke"]
RUN = ["--config.total_steps=4", "--config.batch_size=16", "--config.checkpoint_every=2",
       "--config.eval_every=100", "--config.eval_batches=1", "--config.mesh.data=2",
       "--config.mesh.fsdp=4"]
# Same compiler settings in every run (compiles are slow on a busy 2-core box).
FAST = {"JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}
# The relaunches (six runs compiling, minutes on 2 cores, 22 min on a loaded box) are outside
# `make test` unless asked for (`make test-multiprocess`); the first three runs are inside it.
opt_in = pytest.mark.skipif(
    os.environ.get("TINYMYO_MULTIPROCESS_TESTS", "") in ("", "0"),
    reason="end-to-end multi-process training: set TINYMYO_MULTIPROCESS_TESTS=1 "
           "(make test-multiprocess)")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def launch(spawn, n: int, workdir, *flags, per_process=None):
  """Starts `n` processes of one run (8 / n CPU devices each); returns the Popen objects."""
  port = free_port()
  env = dict(os.environ, PYTHONPATH=str(REPO), **FAST,
             XLA_FLAGS=f"--xla_force_host_platform_device_count={8 // n}")
  procs = []
  for i in range(n):
    cmd = [sys.executable, *SMOKE, f"--workdir={workdir}", *RUN, *flags,
           "--config.distributed=True", f"--coordinator_address=localhost:{port}",
           f"--num_processes={n}", f"--process_id={i}", *(per_process or {}).get(i, ())]
    procs.append(spawn(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True))
  return procs


def wait_all(procs, timeout=1500):
  outs = [p.communicate(timeout=timeout)[0] for p in procs]
  return [p.returncode for p in procs], outs


def launch_one(spawn, workdir, *flags):
  """The single-process reference: one process with all 8 CPU devices."""
  env = dict(os.environ, PYTHONPATH=str(REPO), **FAST,
             XLA_FLAGS="--xla_force_host_platform_device_count=8")
  return spawn([sys.executable, *SMOKE, f"--workdir={workdir}", *RUN, *flags],
               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def launch_run(spawn, flags, workdir, n: int):
  """The run of `flags` as one process with 2 CPU devices (n=1) or as n processes of 2/n."""
  port = free_port()
  env = dict(os.environ, PYTHONPATH=str(REPO), **FAST,
             XLA_FLAGS=f"--xla_force_host_platform_device_count={2 // n}")
  multi = lambda i: ["--config.distributed=True", f"--coordinator_address=localhost:{port}",
                     f"--num_processes={n}", f"--process_id={i}"]
  return [spawn([sys.executable, *flags, f"--workdir={workdir}", *(multi(i) if n > 1 else [])],
                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
          for i in range(n)]


def run_processes(spawn, n: int, workdir, *flags):
  codes, outs = wait_all(launch(spawn, n, workdir, *flags))
  assert codes == [0] * n, "\n".join(o[-3000:] for o in outs)
  return outs


def losses(workdir) -> dict[int, float]:
  return {r["step"]: r["train/loss"] for r in reporting.read_metrics(str(workdir))
          if "train/loss" in r}


def train_as_two_and_as_one(tmp_path, spawn):
  """The smoke pretraining as 2 processes x 4 devices and as 1 x 8, side by side; checks that
  the curves agree, that process 0 alone logs, and that one process restores the 2-process
  checkpoint. Returns the 2-process workdir and the reference losses."""
  one = launch_one(spawn, tmp_path / "one")
  two = tmp_path / "two"
  procs = launch(spawn, 2, two)  # at the same time as the reference run: compiles are slow here
  codes, outs = wait_all([one, *procs])
  assert codes == [0, 0, 0], "\n".join(o[-3000:] for o in outs)
  outs = outs[1:]
  reference = losses(tmp_path / "one")
  assert sorted(reference) == [1, 2, 3, 4]
  got = losses(two)
  np.testing.assert_allclose([got[s] for s in range(1, 5)],
                             [reference[s] for s in range(1, 5)], rtol=1e-5)
  # Logs from process 0 only; one checkpoint holds every process's iterator state.
  assert "summary:" in outs[0] and "summary:" not in outs[1]
  assert len(list(two.glob("events.out.tfevents.*"))) == 1
  assert sorted(p.name for p in (two / "checkpoints" / "4" / "data").glob("*.json")) == [
      "process_0-of-2.json", "process_1-of-2.json"]

  # 2 -> 1: one process restores the two-process checkpoint (export, evaluation).
  params, _, meta = checkpointing.load_params(str(two / "checkpoints"))
  ref_params, _, _ = checkpointing.load_params(str(tmp_path / "one" / "checkpoints"))
  assert meta["step"] == 4
  for a, b in zip(*(jax_leaves(p) for p in (params, ref_params))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  return two, reference


@pytest.mark.integration
@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path, spawn):
  """In `make test`: three runs at once, no relaunch (the resumes are the opt-in test below)."""
  train_as_two_and_as_one(tmp_path, spawn)


@opt_in
@pytest.mark.integration
@pytest.mark.slow
def test_two_processes_train_resume_and_restore_like_one(tmp_path, spawn):
  two, reference = train_as_two_and_as_one(tmp_path, spawn)

  # 2 -> 2: drop the last checkpoint (as if killed after step 2); the re-launch resumes there.
  shutil.rmtree(two / "checkpoints" / "4")
  (two / "summary.json").unlink()
  run_processes(spawn, 2, two)
  rows = [r["step"] for r in reporting.read_metrics(str(two)) if "train/loss" in r]
  assert rows == [1, 2, 3, 4, 3, 4]
  resumed = losses(two)  # the resumed rows overwrite the first run's
  np.testing.assert_allclose([resumed[s] for s in (3, 4)], [reference[s] for s in (3, 4)],
                             rtol=1e-5)

  # 2 -> 1 and 1 -> 2: the iterator state is a global batch count, so either resumes the curve.
  for workdir, n in ((two, 1), (tmp_path / "one", 2)):
    shutil.rmtree(workdir / "checkpoints" / "4")
    (workdir / "summary.json").unlink()
    if n == 1:
      codes, outs = wait_all([launch_one(spawn, workdir)])
      assert codes == [0], outs[0][-3000:]
    else:
      run_processes(spawn, n, workdir)
    got = losses(workdir)
    np.testing.assert_allclose([got[s] for s in (3, 4)], [reference[s] for s in (3, 4)],
                               rtol=1e-5)


@opt_in
@pytest.mark.integration
@pytest.mark.slow
def test_four_processes_train_like_one(tmp_path, spawn):
  """4 processes x 2 devices: the same (2, 4) mesh and global batch as one 8-device process."""
  codes, outs = wait_all([launch_one(spawn, tmp_path / "one"),
                          *launch(spawn, 4, tmp_path / "four")])
  assert codes == [0] * 5, "\n".join(o[-3000:] for o in outs)
  reference, got = losses(tmp_path / "one"), losses(tmp_path / "four")
  assert sorted(got) == sorted(reference) == [1, 2, 3, 4]
  np.testing.assert_allclose([got[s] for s in range(1, 5)],
                             [reference[s] for s in range(1, 5)], rtol=1e-5)
  assert ["summary:" in out for out in outs[1:]] == [True, False, False, False]
  assert sorted(p.name for p in (tmp_path / "four" / "checkpoints" / "4" / "data").glob(
      "*.json")) == [f"process_{i}-of-4.json" for i in range(4)]


def jax_leaves(tree):
  import jax
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.mark.integration
def test_a_process_with_another_config_is_refused_before_training(tmp_path, spawn):
  procs = launch(spawn, 2, tmp_path, per_process={1: ["--config.optimizer.peak_lr=0.001"]})
  start = time.time()
  codes, outs = wait_all(procs, timeout=600)
  assert codes[0] != 0 and codes[1] != 0, outs
  message = ("process 1 of 2 was started with a different config than process 0 "
             "(optimizer.peak_lr: process 0 0.0001, process 1 0.001)")
  for i, out in enumerate(outs):
    assert f"process {i} of 2 failed: ConfigMismatchError: {message}" in out, out[-3000:]
  assert not (tmp_path / "checkpoints").exists() or not os.listdir(tmp_path / "checkpoints")
  assert time.time() - start < 600


@opt_in
@pytest.mark.integration
@pytest.mark.slow
def test_sigkill_of_one_process_stops_the_other_and_relaunch_resumes(tmp_path, spawn):
  flags = ["--config.total_steps=8", "--heartbeat_timeout_s=20"]
  procs = launch(spawn, 2, tmp_path, *flags)
  deadline = time.time() + 900
  while not (tmp_path / "checkpoints" / "2").is_dir():
    assert all(p.poll() is None for p in procs) and time.time() < deadline, "no checkpoint"
    time.sleep(0.05)
  procs[1].kill()
  killed_at = time.time()
  codes, outs = wait_all(procs, timeout=300)
  waited = time.time() - killed_at
  assert codes[1] == -9 and codes[0] != 0, outs[0][-3000:]
  assert waited < 20 + 60, f"process 0 took {waited:.0f} s to stop"
  assert max(losses(tmp_path)) < 8, "the run was not interrupted"
  last = max(int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit())
  outs = run_processes(spawn, 2, tmp_path, *flags)
  assert f"resumed from step {last}" in outs[0]
  assert sorted(losses(tmp_path)) == list(range(1, 9))


@opt_in
@pytest.mark.integration
@pytest.mark.slow
def test_two_processes_fine_tune_speech_like_one(tmp_path, spawn):
  """Gaddy recognition on the builder's dummy data: 2 processes x 1 device == 1 process x 2."""
  import tensorflow_datasets as tfds

  from data_builders import registry

  data_dir = tmp_path / "tfds"
  registry.builder_class("gaddy_silent_speech")(
      data_dir=str(data_dir), config="origdev", file_format="array_record").download_and_prepare(
      download_config=tfds.download.DownloadConfig(
          manual_dir=str(REPO / "data_builders" / "gaddy_silent_speech" / "dummy_data")))
  flags = ["-m", "tinymyo_jax.main", "--config=configs/finetune.py:gaddy_recognition",
           f"--config.data.data_dir={data_dir}", "--config.model.variant=test",
           "--config.batch_size=2", "--config.init_from=", "--config.finetune.num_epochs=1",
           "--config.finetune.warmup_epochs=0", "--config.optimizer.warmup_steps=1",
           "--config.finetune.beam_width=2", "--config.finetune.seeds=1",
           "--config.log_every=1", "--config.mesh.data=2", "--config.mesh.fsdp=1"]
  one = launch_run(spawn, flags, tmp_path / "one", 1)
  two = launch_run(spawn, flags, tmp_path / "two", 2)
  codes, outs = wait_all([*one, *two], timeout=900)
  assert codes == [0, 0, 0], "\n".join(o[-3000:] for o in outs)
  reference, got = losses(tmp_path / "one" / "seed_0"), losses(tmp_path / "two" / "seed_0")
  assert sorted(got) == sorted(reference) == [1, 2]  # 4 training utterances, 2 per step
  np.testing.assert_allclose([got[s] for s in (1, 2)], [reference[s] for s in (1, 2)],
                             rtol=1e-5)
  ref_test = json.loads((tmp_path / "one" / "summary.json").read_text())["test"]
  test = json.loads((tmp_path / "two" / "summary.json").read_text())["test"]
  for key in ("cer", "wer", "cer_greedy", "wer_greedy"):
    assert test[key]["mean"] == pytest.approx(ref_test[key]["mean"], abs=1e-6), key


@opt_in
@pytest.mark.integration
@pytest.mark.slow
def test_two_processes_fine_tune_a_classifier_like_one(tmp_path, spawn):
  """Synthetic windows from scratch: 2 processes x 1 device == 1 process x 2, test scores too
  (each process predicts every other test window, `evaluate.window_outputs`)."""
  flags = ["-m", "tinymyo_jax.main", "--config=configs/finetune.py:uci",
           "--config.data.sources=(('synthetic','8x200:64:6',1.0),)",
           "--config.model.variant=test", "--config.batch_size=8", "--config.init_from=",
           "--config.finetune.num_epochs=1", "--config.finetune.warmup_epochs=0",
           "--config.optimizer.warmup_steps=1", "--config.finetune.seeds=1",
           "--config.log_every=1", "--config.mesh.data=2", "--config.mesh.fsdp=1"]
  codes, outs = wait_all([*launch_run(spawn, flags, tmp_path / "one", 1),
                          *launch_run(spawn, flags, tmp_path / "two", 2)], timeout=900)
  assert codes == [0, 0, 0], "\n".join(o[-3000:] for o in outs)
  reference, got = losses(tmp_path / "one" / "seed_0"), losses(tmp_path / "two" / "seed_0")
  assert sorted(got) == sorted(reference) and len(got) > 1
  np.testing.assert_allclose([got[s] for s in sorted(got)],
                             [reference[s] for s in sorted(got)], rtol=1e-5)
  ref_test = json.loads((tmp_path / "one" / "summary.json").read_text())["test"]
  test = json.loads((tmp_path / "two" / "summary.json").read_text())["test"]
  for key in ("accuracy", "macro_f1"):
    assert test[key]["mean"] == pytest.approx(ref_test[key]["mean"], abs=1e-6), key
