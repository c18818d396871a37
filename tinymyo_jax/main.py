"""Entry point: `python -m tinymyo_jax.main --config=configs/<pretrain|finetune>.py:<name>
--workdir=DIR`.

Everything else lives in importable modules (`train.train_and_evaluate`); this file only parses
flags, sets up logging and multi-host JAX, and prints where the outputs are.
"""

from __future__ import annotations

import os

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Run config file (with :preset).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints, TensorBoard events and summary.json go.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  # Library INFO chatter (orbax, absl) would drown the progress bar; warnings still show.
  absl_logging.set_verbosity(absl_logging.WARNING)
  import jax  # imported after flag parsing so XLA flags in the environment apply
  config = FLAGS.config
  if config.distributed:
    jax.distributed.initialize()  # coordinator and process ids come from the environment
  print(f"JAX {jax.__version__}, process {jax.process_index()}/{jax.process_count()}, "
        f"devices: {jax.devices()}", flush=True)
  workdir = os.path.abspath(FLAGS.workdir)
  if config.task == "pretrain":
    from tinymyo_jax import train
    summary = train.train_and_evaluate(config, workdir)
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


if __name__ == "__main__":
  app.run(main)
