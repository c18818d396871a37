"""Every shipped config and preset loads, is locked and validates."""

from __future__ import annotations

import pytest

from configs import common, pretrain


@pytest.mark.parametrize("preset", ["default", "small", "smoke", "paper"])
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
