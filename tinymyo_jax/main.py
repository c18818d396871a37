"""Entry point: `python -m tinymyo_jax.main --config=configs/<pretrain|finetune>.py:<name>
--workdir=DIR`.

Everything else lives in importable modules (`train.train_and_evaluate`); this file only parses
flags, sets up logging and multi-host JAX, and prints where the outputs are.
"""

from __future__ import annotations

import os
import sys
import traceback

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Run config file (with :preset).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints, TensorBoard events and summary.json go.")
flags.DEFINE_string("coordinator_address", None,
                    "Multi-process (--config.distributed=True): host:port of process 0's "
                    "coordinator; default from the environment (JAX_COORDINATOR_ADDRESS, SLURM).")
flags.DEFINE_integer("num_processes", None, "Multi-process: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-process: this process's index, 0..N-1.")
flags.DEFINE_integer("heartbeat_timeout_s", 100,
                     "Multi-process: seconds without heartbeat after which a process counts as "
                     "dead and every other process is terminated.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  # Library INFO chatter (orbax, absl) would drown the progress bar; warnings still show.
  absl_logging.set_verbosity(absl_logging.WARNING)
  import jax  # imported after flag parsing so XLA flags in the environment apply
  from tinymyo_jax import multihost
  config = FLAGS.config
  if config.distributed:
    multihost.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
                         FLAGS.heartbeat_timeout_s)
  from tinymyo_jax import cpu_features
  print(f"JAX {jax.__version__}, process {jax.process_index()}/{jax.process_count()}, "
        f"devices: {jax.devices()}; {cpu_features.describe(jax.default_backend())}", flush=True)
  try:
    multihost.check_same_config(config)
    run(config)
  except Exception as e:
    print(f"process {jax.process_index()} of {jax.process_count()} failed: "
          f"{type(e).__name__}: {e}", file=sys.stderr, flush=True)
    if jax.process_count() == 1:
      raise
    # jax.distributed's exit handler would wait for peers that may never arrive; exiting at
    # once, the coordinator marks this process dead and stops the others.
    traceback.print_exc()
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(1)


def run(config):
  import jax
  workdir = os.path.abspath(FLAGS.workdir)
  from tinymyo_jax import tasks
  if tasks.get(config.task).evaluate is None:  # a task that only trains (pretraining)
    from tinymyo_jax import train
    summary = train.train_and_evaluate(config, workdir, **continued_from(config))
    if jax.process_index() == 0:
      print(f"\nsteps: {summary['steps']}  final train loss: {summary['final_train_loss']}  "
            f"final eval loss: {summary['final_eval_loss']}")
      print(f"checkpoints: {summary['checkpoint_dir']}")
  else:
    from tinymyo_jax import finetune
    summary = finetune.run(config, workdir)
    if jax.process_index() == 0:
      print(f"\ntest: {finetune.scores_line(summary['test'])}")
      print(f"best checkpoint: {summary['runs'][0]['best_dir']}")
      print(f"report:      {os.path.join(workdir, 'report.md')}")
  if jax.process_index() == 0:
    print(f"summary:     {os.path.join(workdir, 'summary.json')}")
    print(f"tensorboard: tensorboard --logdir {workdir}")


def continued_from(config) -> dict:
  """`train_and_evaluate` arguments that start a pretraining run from `config.init_from` (every
  parameter of that checkpoint, reconstruction head included: continued pretraining); none
  when it is empty."""
  if not config.get("init_from"):
    return {}
  from tinymyo_jax import finetune, train
  path = finetune.resolve_init(config.init_from)
  init_params, rope_mode = finetune.pretrained_encoder(path, train.model_config_from(config))
  if rope_mode != config.model.rope_mode:
    raise ValueError(f"checkpoint {path} was pretrained with rope_mode {rope_mode!r}, the "
                     f"config asks for {config.model.rope_mode!r}")
  print(f"continuing pretraining from {path}")
  return {"init_params": init_params, "extra_meta": {"init_from": path}}


if __name__ == "__main__":
  app.run(main)
