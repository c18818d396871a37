"""Masked-reconstruction pretraining configs.

Run:  python -m tinymyo_jax.main --config=configs/pretrain.py:<preset> --workdir=DIR
      [--config.total_steps=...]   (any field can be overridden; misspelt keys are errors)

Presets:
  default  TinyMyo (8 layers, 3.57M params) on the UCI-EMG windows (8 ch x 1000 samples), the
           embedded default; `make pretrain` runs it briefly on the bundled sample.
  small    the 4-layer variant, same data.
  smoke    a 2-layer, 48-wide model on synthetic windows, for tests and quick checks (seconds).
  myo      cross-corpus: the `all` windows of the four Myo-armband corpora (myoarmband,
           myo_readings, myodisco, ciil; ~90 people, 8 ch x 200 samples = 1 s at 200 Hz), no
           UCI recording; weights ~ sqrt(hours); masked loss logged per corpus and on the UCI
           validation subjects (`data.eval_sources`), so one checkpoint serves every UCI split.
  myo_heldout  `myo` without the test windows of the across-people and within-person tasks
           run from it: MyoArmband's cycle 3 (repetition 4) and myo_readings' test participants.
           The `all` windows of myodisco and ciil stay in (their day-2 / post-shift test
           recordings too, unlabeled): rows of those tasks from it are transductive.
  myo_uci  `myo` plus the UCI training subjects' windows (`hz200_all` train: subjects <= 16 of
           the documented split) at the four corpora's summed weight (half of each batch): for
           continuing a `myo` checkpoint on the task's own recording conditions
           (`--config.init_from=<myo checkpoints>`); it serves the documented split only.
  paper    the paper's corpora: NinaPro DB6 + DB7 + emg2pose, 16 ch x 1000 at 2 kHz, zero-padded
           to 16 channels, batch 512, 50-epoch-like schedule (needs the corpora built).

Data sources: `config.data.sources` entries are (tfds_name, builder_config, weight[,
channel_group[, split]]): channel_group > 0 cuts each window into groups of that many consecutive
channels (e.g. 8 for NinaPro DB5's two Myo armbands), and a source with its own split always
trains on it and is left out of evaluation, e.g. adding DB5 to UCI-EMG pretraining:
  "--config.data.sources=(('uci_emg','hz200_all',1.0),('ninapro_db5','by_subject',0.6,8,'train'))"
"""

from configs import common


def get_config(arg: str | None = None):
  presets = {"default": _default, "small": _small, "smoke": _smoke, "myo": _myo,
             "myo_heldout": _myo_heldout, "myo_uci": _myo_uci, "paper": _paper}
  name = common.pick_preset(arg, presets)
  config = common.base_config()
  config.name = name
  presets[name](config)
  return config.lock()


def _default(c):
  c.total_steps = 2000
  c.optimizer.warmup_steps = 100


def _small(c):
  _default(c)
  c.model.variant = "small"


def _smoke(c):
  c.data.sources = (("synthetic", "8x200:128", 1.0),)  # no corpus build needed
  common.smoke_schedule(c, batch_size=8)


# Hours of EMG per corpus (SOURCE.md): 0.85, 13.5, 4.7, 1.9; weights ~ sqrt(hours), so the largest
# corpus (myo_readings, 33 people) does not drown the other 57 people.
MYO_SOURCES = (("myoarmband", "all", 0.9), ("myo_readings", "all", 3.7), ("myodisco", "all", 2.2),
               ("ciil", "all", 1.4))


def _myo(c):
  c.data.sources = MYO_SOURCES
  c.data.normalization = "standardize"  # per-corpus training-split channel statistics
  c.data.eval_sources = (("uci_emg", "hz200_all", "validation"),)
  c.batch_size = 32
  c.total_steps = 1500
  c.optimizer.peak_lr = 5e-4
  c.optimizer.warmup_steps = 75
  c.log_every = 10
  c.eval_every = 250
  c.checkpoint_every = 250
  c.eval_batches = 8


# myo_readings' test participants (its `default` config: a hash of the id, 15% test); `all`
# puts one of them (64917) in its training split. A test checks the list against the hash.
MYO_READINGS_TEST_PARTICIPANTS = (26082, 32185, 41924, 45677, 48584, 64917, 91827, 95462, 99998)


def _myo_heldout(c):
  _myo(c)
  excluded = "+".join(map(str, MYO_READINGS_TEST_PARTICIPANTS))
  held_out = {"myoarmband": "train|repetition=1-3",            # cycles 0-2 of every person
              "myo_readings": f"train|subject!={excluded}"}
  c.data.sources = tuple((name, config, weight, 0, held_out[name]) if name in held_out
                         else (name, config, weight) for name, config, weight in MYO_SOURCES)


def _myo_uci(c):
  _myo(c)
  uci_weight = sum(weight for _, _, weight in MYO_SOURCES)
  c.data.sources = MYO_SOURCES + (("uci_emg", "hz200_all", uci_weight, 0, "train"),)


def _paper(c):
  c.data.sources = (("ninapro_db6", "default", 1.0), ("ninapro_db7", "default", 1.0),
                    ("emg2pose", "default", 1.0))
  c.data.num_channels = 16
  c.batch_size = 512
  c.total_steps = 30000
  c.optimizer.warmup_steps = 3000
  c.eval_every = 2000
  c.checkpoint_every = 1000
