"""Tests of the builder registry and the build command's argument handling."""

from __future__ import annotations

import pytest

from data_builders import build as build_lib
from data_builders import registry


def test_known_datasets_lists_builder_folders():
  assert "uci_emg" in registry.known_datasets()
  assert registry.builder_class("uci_emg").__module__ == (
      "data_builders.uci_emg.uci_emg_dataset_builder")


def test_unknown_name_lists_known_ones():
  with pytest.raises(ValueError, match=r"unknown dataset 'nope'; known datasets: .*uci_emg"):
    registry.get_builder("nope", data_dir="/tmp/unused")


def test_unknown_config_lists_configs(tmp_path):
  with pytest.raises(ValueError, match=r"no config 'hz999'; configs: default, hz200"):
    registry.get_builder("uci_emg", data_dir=tmp_path, config="hz999")


def test_builder_config_and_default_data_dir():
  builder = registry.get_builder("uci_emg", config="hz200")
  assert builder.builder_config.name == "hz200"
  assert str(builder.data_dir_root) == str(registry.DEFAULT_DATA_DIR)


def test_load_split_not_built_names_everything(tmp_path):
  with pytest.raises(registry.DatasetNotBuiltError) as info:
    registry.load_split("uci_emg", "train", data_dir=tmp_path, config="hz200")
  message = str(info.value)
  assert "'uci_emg'" in message and "'hz200'" in message and str(tmp_path) in message
  assert f"--data_dir={tmp_path} --config=hz200" in message


def test_build_cli_reports_missing_manual_dir(tmp_path, capsys):
  code = build_lib.main(["uci_emg", f"--manual_dir={tmp_path / 'absent'}",
                         f"--data_dir={tmp_path}"])
  assert code == 2
  assert f"manual_dir {tmp_path / 'absent'} does not exist" in capsys.readouterr().err


def test_beam_options_parse():
  pytest.importorskip("apache_beam")
  options = build_lib.beam_options("runner=DirectRunner,direct_num_workers=2")
  assert options.get_all_options()["direct_num_workers"] == 2
  assert build_lib.beam_options("") is None
