"""Every shipped config and preset loads, is locked and validates."""

from __future__ import annotations

import pytest

from configs import common, finetune, pretrain

PRETRAIN_PRESETS = ["default", "small", "smoke", "myo", "myo_heldout", "myo_uci", "paper"]
# Every name `configs/finetune.py` ships: each task, each named UCI split, and their smoke variants.
FINETUNE_NAMES = [*finetune.TASKS, *(f"{t},{s}" for t in ("uci", "uci_200hz")
                                      for s in finetune.UCI_SPLITS)]


@pytest.mark.parametrize("preset", PRETRAIN_PRESETS)
def test_pretrain_presets_validate(preset):
  config = pretrain.get_config(preset)
  common.validate(config)
  assert config.name == preset
  with pytest.raises(AttributeError):
    config.not_a_field = 1  # locked: misspelt keys are errors


def test_unknown_preset_names_the_value():
  with pytest.raises(ValueError, match="unknown config preset 'huge'"):
    pretrain.get_config("huge")


def test_paper_preset_uses_the_paper_corpora():
  config = pretrain.get_config("paper")
  assert [s[0] for s in config.data.sources] == ["ninapro_db6", "ninapro_db7", "emg2pose"]
  assert config.data.num_channels == 16


@pytest.mark.parametrize("field,value,match", [
    ("batch_size", 0, "batch_size must be >= 1"),
    ("total_steps", -5, "total_steps must be >= 1"),
])
def test_validate_rejects_bad_values(field, value, match):
  config = pretrain.get_config("smoke").unlock()
  config[field] = value
  with pytest.raises(ValueError, match=match):
    common.validate(config)


@pytest.mark.parametrize("task", sorted(__import__("configs.finetune").finetune.TASKS))
def test_finetune_tasks_name_real_builder_configs(task):
  from configs import finetune
  from data_builders import registry
  config = finetune.get_config(task)
  assert config.name == task and config.task != "pretrain"
  for name, builder_config, _ in config.data.sources:
    configs = [c.name for c in registry.builder_class(name).BUILDER_CONFIGS]
    assert builder_config in configs, (name, builder_config, configs)


def test_paper_preset_names_real_builder_configs():
  from data_builders import registry
  for name, builder_config, _ in pretrain.get_config("paper").data.sources:
    assert builder_config in [c.name for c in registry.builder_class(name).BUILDER_CONFIGS]


@pytest.mark.parametrize("sources", [
    (("uci_emg", "hz200", 0.0),),
    (("uci_emg", "hz200", 1.0, -8),),
    (("uci_emg", "hz200", 1.0, 8, "train", "extra"),),
])
def test_validate_rejects_bad_source_entries(sources):
  config = pretrain.get_config("smoke").unlock()
  config.data.sources = sources
  with pytest.raises(ValueError, match="entries are \\(name, builder_config, weight>0"):
    common.validate(config)


def test_uci_folds_partition_the_subjects():
  from configs import finetune
  tests = []
  for k in range(5):
    roles = [ip_values(expr) for expr in finetune.UCI_SPLITS[f"fold{k}"]]
    assert set().union(*roles) == set(range(1, 37))
    assert sum(len(r) for r in roles) == 36  # no subject in two roles
    assert roles[1] == ip_values(finetune.UCI_SPLITS[f"fold{(k + 1) % 5}"][2])
    tests.append(roles[2])
  assert sorted(s for t in tests for s in t) == list(range(1, 37))


def test_named_uci_splits_and_their_errors():
  from configs import finetune
  paper = finetune.get_config("uci_200hz,paper")
  assert paper.name == "uci_200hz_paper"
  assert [ip_values(s) for s in (paper.data.train_split, paper.data.eval_split,
                                 paper.data.test_split)] == [set(range(1, 25)),
                                                             set(range(25, 31)),
                                                             set(range(31, 37))]
  assert finetune.get_config("uci,copy").data.test_split == "test"
  with pytest.raises(ValueError, match="unknown UCI split 'fold9'"):
    finetune.get_config("uci_200hz,fold9")
  with pytest.raises(ValueError, match="task 'db5' takes no named split"):
    finetune.get_config("db5,paper")


def test_myo_preset_trains_on_no_uci_recording():
  config = pretrain.get_config("myo")
  common.validate(config)
  assert [s[0] for s in config.data.sources] == ["myoarmband", "myo_readings", "myodisco",
                                                  "ciil"]
  assert all(s[1] == "all" for s in config.data.sources)
  assert config.data.eval_sources == (("uci_emg", "hz200_all", "validation"),)
  from data_builders import registry
  for name, builder_config, *_ in (*config.data.sources, *config.data.eval_sources):
    assert builder_config in [c.name for c in registry.builder_class(name).BUILDER_CONFIGS]


def test_myo_heldout_preset_leaves_out_every_myo_test_window():
  from data_builders import emg_common
  from data_builders.myo_readings import myo_readings_dataset_builder as myo_readings
  from tinymyo_jax import input_pipeline
  config = pretrain.get_config("myo_heldout")
  common.validate(config)
  splits = {s[0]: s[4] for s in config.data.sources if len(s) > 4}
  assert set(splits) == {"myoarmband", "myo_readings"}
  _, where = input_pipeline.parse_split(splits["myoarmband"])
  assert set(where["repetition"]) == {1, 2, 3}   # cycle 3 (repetition 4) is the cycle split's test
  _, where = input_pipeline.parse_split(splits["myo_readings"])
  excluded = set(pretrain.MYO_READINGS_TEST_PARTICIPANTS)
  assert all(p not in where["subject"] for p in excluded)
  assert all(emg_common.hashed_subject_split(
      str(p), validation_percent=myo_readings.VALIDATION_PERCENT,
      test_percent=myo_readings.TEST_PERCENT) == "test" for p in excluded)


def test_myo_uci_preset_adds_only_the_uci_training_subjects_at_half_of_each_batch():
  config = pretrain.get_config("myo_uci")
  *myo, uci = config.data.sources
  assert tuple(myo) == pretrain.MYO_SOURCES
  assert uci[:2] == ("uci_emg", "hz200_all") and uci[4] == "train"
  assert uci[2] == pytest.approx(sum(s[2] for s in myo))
  assert config.data.eval_sources == (("uci_emg", "hz200_all", "validation"),)


def test_validate_rejects_bad_eval_sources():
  config = pretrain.get_config("smoke").unlock()
  config.data.eval_sources = (("uci_emg", "hz200"),)
  with pytest.raises(ValueError, match="eval_sources entries are \\(name, builder_config, split"):
    common.validate(config)


def test_validate_rejects_augmentation_for_speech_tasks():
  config = finetune.get_config("gaddy_recognition")
  common.validate(config)
  config.data.augment.rotate = 1
  with pytest.raises(ValueError, match="augment applies to window tasks.*'speech_recognition'"):
    common.validate(config)
  window_task = finetune.get_config("uci_200hz")
  window_task.data.augment.rotate = 1
  common.validate(window_task)


def ip_values(expr: str) -> set[int]:
  from tinymyo_jax import input_pipeline
  return set(input_pipeline.parse_split(expr)[1]["subject"])


@pytest.mark.parametrize("name", FINETUNE_NAMES)
def test_finetune_configs_and_their_smoke_variants_validate(name):
  config = finetune.get_config(name)
  common.validate(config)  # total_steps etc. at 0: derived from the epochs later
  assert config.total_steps == 0 and config.model.variant == "tiny"
  with pytest.raises(ValueError, match="config.total_steps must be >= 1"):
    common.validate(config, resolved=True)  # the training loop needs them set
  with pytest.raises(AttributeError):
    config.not_a_field = 1
  smoke = finetune.get_config(f"{name},smoke")
  common.validate(smoke, resolved=True)  # nothing left to derive
  assert smoke.name == config.name + "_smoke"
  assert smoke.model.variant == "test" and smoke.init_from == ""
  assert 0 < smoke.total_steps <= 10 and smoke.finetune.seeds == 1
  # The task itself is unchanged: head, loss, outputs, data and splits.
  for key in ("task", "model.head", "model.num_outputs", "model.num_channels", "data.sources",
              "data.train_split", "data.eval_split", "data.test_split", "data.normalization"):
    node, _, leaf = key.rpartition(".")
    assert (smoke[node] if node else smoke)[leaf] == (config[node] if node else config)[leaf], key


def test_every_shipped_config_validates_and_builds_its_model():
  from tinymyo_jax import train
  configs = [pretrain.get_config(p) for p in PRETRAIN_PRESETS]
  configs += [finetune.get_config(n) for n in FINETUNE_NAMES]
  configs += [finetune.get_config(f"{n},smoke") for n in FINETUNE_NAMES]
  assert len(configs) == len(PRETRAIN_PRESETS) + 2 * len(FINETUNE_NAMES)
  for config in configs:
    common.validate(config)
    model_cfg = train.model_config_from(config)  # the model the run would build
    assert model_cfg.num_layers == {"tiny": 8, "small": 4, "test": 2}[config.model.variant]


def test_modifiers_combine_in_any_order():
  config = finetune.get_config("uci_200hz,fold2,smoke")
  assert config.name == "uci_200hz_fold2_smoke" and config.model.variant == "test"
  assert (config.data.train_split, config.data.eval_split, config.data.test_split) == (
      finetune.UCI_SPLITS["fold2"])
  assert finetune.get_config("uci_200hz,smoke,fold2").to_dict() == config.to_dict()
  assert finetune.get_config("db5,smoke").name == "db5_smoke"
  with pytest.raises(ValueError, match="task 'db5' takes no named split \\(got 'paper'\\)"):
    finetune.get_config("db5,smoke,paper")
  with pytest.raises(ValueError, match="unknown UCI split 'smok'"):
    finetune.get_config("uci,smok")
  with pytest.raises(ValueError, match="at most one named split, got \\['fold1', 'fold2'\\]"):
    finetune.get_config("uci,fold1,fold2")


@pytest.mark.parametrize("field,value,match", [
    ("total_steps", -1, "total_steps must be >= 1 \\(or 0: derived from the epochs\\), got -1"),
    ("finetune.num_epochs", 0, "finetune.num_epochs must be >= 1 when config.total_steps is 0"),
    ("finetune.seeds", 0, "finetune.seeds must be >= 1, got 0"),
])
def test_validate_rejects_bad_finetune_values(field, value, match):
  config = finetune.get_config("uci").unlock()
  node, _, leaf = field.rpartition(".")
  (config[node] if node else config)[leaf] = value
  with pytest.raises(ValueError, match=match):
    common.validate(config)
