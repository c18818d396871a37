"""Gaddy speech tasks end to end on the builder's dummy data; the speech input pipeline."""

from __future__ import annotations

import json

import jax
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds
from flax import nnx

from configs import finetune as finetune_configs
from data_builders import registry
from tests.conftest import REPO
from tinymyo_jax import (checkpointing, finetune, input_pipeline, sharding, speech_pipeline,
                         speech_units, tasks, train)
from tinymyo_jax.models import factory, speech
from tinymyo_jax.models.tinymyo import create_model, decode_variant

GADDY = "gaddy_silent_speech"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("gaddy_tfds")
  builder = registry.builder_class(GADDY)(data_dir=str(path), config="origdev",
                                          file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(REPO / "data_builders" / GADDY / "dummy_data")))
  return str(path)


def speech_task(name: str, data_dir: str, **overrides):
  c = finetune_configs.get_config(name).unlock()
  c.data.data_dir = data_dir
  c.model.variant = "test"
  c.batch_size = 2
  c.init_from = ""
  c.finetune.num_epochs = 1
  c.finetune.warmup_epochs = 0
  c.optimizer.warmup_steps = 1
  c.progress_bar = False
  c.finetune.beam_width = 2
  for k, v in overrides.items():
    node, _, leaf = k.rpartition(".")
    (c if not node else c[node])[leaf] = v
  return c


def test_recognition_end_to_end(tmp_path, data_dir):
  summary = finetune.run(speech_task("gaddy_recognition", data_dir), str(tmp_path))
  run = summary["runs"][0]
  assert summary["task_type"] == "speech_recognition" and run["steps"] == 2  # 4 train / 2
  test = run["test"]
  for key in ("cer", "wer", "cer_greedy", "wer_greedy"):
    assert np.isfinite(test[key]) and test[key] >= 0.0
  report = (tmp_path / "report.md").read_text()
  assert "| cer |" in report and "| wer |" in report and "transcripts.tsv" in report
  rows = (tmp_path / "seed_0" / "transcripts.tsv").read_text().splitlines()
  assert rows[0] == "index\treference\tgreedy\tbeam"
  assert rows[1].split("\t")[1] == "synthetic sentence 522"  # the one test utterance
  assert json.loads((tmp_path / "summary.json").read_text())["test"]["wer"]["mean"] == test["wer"]
  # The best checkpoint is a speech model with its BatchNorm running statistics.
  state, cfg, meta = checkpointing.load_params(run["best_dir"])
  assert isinstance(cfg, speech.SpeechConfig) and cfg.task == "recognition"
  assert cfg.num_layers == 2 and cfg.embed_dim == 48
  bn = state["front"]["0"]["first"]["bn"]
  assert sorted(bn) == ["bias", "mean", "scale", "var"]
  assert np.abs(np.asarray(bn["mean"])).max() > 0  # updated by the training steps (init 0)
  assert len(meta["input_stats"][0]["mean"]) == 8


def test_synthesis_end_to_end_writes_mfcc_files(tmp_path, data_dir):
  config = speech_task("gaddy_synthesis", data_dir, **{  # no dropout: a faster compile
      "data.max_len": 400, "model.dropout": 0.0, "model.attn_dropout": 0.0,
      "model.drop_path": 0.0})
  summary = finetune.run(config, str(tmp_path))
  test = summary["runs"][0]["test"]
  assert np.isfinite(test["mfcc_mse"]) and test["mfcc_mse"] > 0
  assert np.isfinite(test["mfcc_mse_model_grid"]) and test["mfcc_mse_model_grid"] > 0
  assert (tmp_path / "report.md").exists()
  files = sorted((tmp_path / "seed_0" / "mfcc_pred").iterdir())
  assert [f.name for f in files] == ["00000.npy"]
  pred = np.load(files[0])
  ref = registry.load_split(GADDY, "test", data_dir=data_dir, config="origdev")[0]["mfcc"]
  assert pred.shape == ref.shape == (58, 26) and pred.dtype == np.float32
  np.testing.assert_allclose(test["mfcc_mse"], np.mean((pred - ref) ** 2), rtol=1e-5)


# ----------------------------------------------------------------------------- pipeline


def test_pipeline_batches_recognition(data_dir):
  source = [input_pipeline.config_sources(finetune_configs.get_config("gaddy_recognition"))[0]]
  records = registry.load_split(GADDY, "train", data_dir=data_dir, config="origdev")
  stats = input_pipeline.channel_stats(records, max_records=speech_pipeline.STATS_UTTERANCES)
  all_emg = np.concatenate([records[i]["emg"] for i in range(len(records))], axis=1)
  np.testing.assert_allclose(stats["mean"], all_emg.mean(axis=1), rtol=1e-6)
  np.testing.assert_allclose(stats["std"], all_emg.std(axis=1), rtol=1e-6)
  batches = list(speech_pipeline.make_dataset(
      source, "train", data_dir=data_dir, batch_size=3, seed=0, train=False,
      task="recognition", stats=[stats], bucket=256))
  assert len(batches) == 2
  first = batches[0]
  lengths = [records[i]["emg"].shape[1] for i in range(3)]
  assert first["emg"].shape == (3, 512, 8) and first["emg_len"].tolist() == lengths
  x0 = (records[0]["emg"] - np.asarray(stats["mean"])[:, None]) / np.asarray(stats["std"])[:, None]
  np.testing.assert_allclose(first["emg"][0, :lengths[0]], x0.T, rtol=1e-5, atol=1e-5)
  assert np.all(first["emg"][0, lengths[0]:] == 0)
  ids = speech_units.text_to_ids(records[0]["transcript"].decode())
  assert first["labels"].shape == (3, 32) and first["label_len"][0] == len(ids)
  assert first["labels"][0, :len(ids)].tolist() == ids and not first["labels"][0, len(ids):].any()
  last = batches[1]  # one utterance, padded to 3 rows with empty ones
  assert last["emg_len"][1:].tolist() == [0, 0] and last["label_len"][1:].tolist() == [0, 0]


@pytest.mark.parametrize("task,train", [("recognition", False), ("synthesis", True)])
def test_processes_read_rows_of_one_global_stream_with_its_padding(data_dir, task, train):
  """2 processes x 2 rows == 1 process x 4 rows: same utterances, crops and padded shapes."""
  source = [input_pipeline.config_sources(finetune_configs.get_config(f"gaddy_{task}"))[0]]
  kw = dict(data_dir=data_dir, seed=3, train=train, task=task, normalization="none",
            max_len=240 if train else 0, bucket=80)

  def batches(batch_size, process):
    ds = iter(speech_pipeline.make_dataset(source, "train", batch_size=batch_size,
                                           process=process, **kw))
    return [b for _, b in zip(range(3), ds)]

  one = batches(4, (0, 1))
  parts = [batches(2, (i, 2)) for i in range(2)]
  assert len(parts[0]) == len(parts[1]) == len(one)  # same number of steps on every process
  for whole, p0, p1 in zip(one, *parts):
    for key in ("emg", "emg_len", "labels", "label_len", "mfcc"):
      if key in whole:
        assert p0[key].shape == p1[key].shape  # one padded length per global batch
        np.testing.assert_array_equal(np.concatenate([p0[key], p1[key]]), whole[key])
  if not train:  # 4 utterances: one global batch, nothing dropped, every row real
    assert sorted(np.concatenate([parts[0][0]["emg_len"], parts[1][0]["emg_len"]])) == sorted(
        one[0]["emg_len"]) and min(one[0]["emg_len"]) > 0


def test_pipeline_synthesis_crop_and_mfcc_alignment(data_dir):
  records = registry.load_split(GADDY, "train", data_dir=data_dir, config="origdev")
  source = [input_pipeline.config_sources(finetune_configs.get_config("gaddy_synthesis"))[0]]
  batch = next(iter(speech_pipeline.make_dataset(
      source, "train", data_dir=data_dir, batch_size=4, seed=1, train=True, task="synthesis",
      normalization="none", max_len=240, bucket=240)))
  assert batch["emg"].shape == (4, 240, 8) and batch["mfcc"].shape == (4, 30, 26)
  assert batch["emg_len"].tolist() == [240] * 4  # every dummy utterance is longer: cropped
  # A crop is a contiguous segment starting on a frame boundary, its MFCCs cut alike.
  x = batch["emg"][0].T
  match = [(r, s) for r in (records[i] for i in range(len(records)))
           for s in range(0, r["emg"].shape[1] - 239, 8)
           if np.array_equal(r["emg"][:, s:s + 240], x)]
  assert len(match) == 1
  record, start = match[0]
  full = speech_pipeline.to_model_frames(record["mfcc"], speech_units.output_length(
      record["emg"].shape[1]))
  np.testing.assert_array_equal(batch["mfcc"][0], full[start // 8:start // 8 + 30])


def test_mfcc_grid_interpolation_round_trip():
  # Corpus frame g is centred on sample 10 g + 12; model frame f on 8 f + 3.5. A linear ramp in
  # time stays the same ramp on both grids.
  g = np.arange(50, dtype=np.float32)
  corpus = np.stack([10 * g + 12] * 26, axis=1)
  model = speech_pipeline.to_model_frames(corpus, 60)
  inner = slice(2, 60)  # frames whose centre lies inside the corpus span
  np.testing.assert_allclose(model[inner, 0], 8 * np.arange(60)[inner] + 3.5, rtol=1e-6)
  assert model[0, 0] == 12.0  # before the first corpus centre: the first frame
  back = speech_pipeline.to_corpus_frames(model, 50)
  np.testing.assert_allclose(back[1:47], corpus[1:47], rtol=1e-6)  # inside the model span


def test_pipeline_rejects_bad_settings(data_dir):
  source = [input_pipeline.config_sources(finetune_configs.get_config("gaddy_synthesis"))[0]]
  kw = dict(data_dir=data_dir, batch_size=2, seed=0, train=True, task="synthesis")
  with pytest.raises(ValueError, match="max_len must be 0 .* multiple of 8, got 100"):
    speech_pipeline.make_dataset(source, "train", normalization="none", max_len=100, **kw)
  with pytest.raises(ValueError, match="speech normalization must be one of .* got 'minmax'"):
    speech_pipeline.make_dataset(source, "train", normalization="minmax", **kw)
  with pytest.raises(ValueError, match="bucket must be a positive multiple of 8 samples, got 100"):
    speech_pipeline.make_dataset(source, "train", normalization="none", bucket=100, **kw)


# ----------------------------------------------------------------------------- state, configs


def test_model_configs_round_trip_through_checkpoint_json():
  speech_cfg = speech.SpeechConfig.from_variant("test", "synthesis", rope_mode="time")
  data = checkpointing.model_config_to_json(speech_cfg)
  assert data["model_type"] == "speech"
  assert checkpointing.model_config_from_json(data) == speech_cfg
  tiny_cfg = decode_variant("test", head="classification", num_outputs=6)
  data = checkpointing.model_config_to_json(tiny_cfg)
  assert "model_type" not in data  # TinyMyo checkpoints look as they always did
  assert checkpointing.model_config_from_json(data) == tiny_cfg
  with pytest.raises(checkpointing.CheckpointError, match="unknown model_type 'rnn'"):
    checkpointing.model_config_from_json(dict(data, model_type="rnn"))
  with pytest.raises(checkpointing.CheckpointError, match=r"unknown fields \['bogus'\]"):
    checkpointing.model_config_from_json(dict(data, bogus=1))


def test_speech_state_saves_restores_and_loads_with_batch_stats(tmp_path):
  cfg = speech.SpeechConfig.from_variant("test", "recognition")
  mesh = sharding.make_mesh(-1, 1)
  tx = optax.adamw(1e-3)
  _, state = train.init_state(cfg, mesh, tx, seed=0)
  assert sorted(state) == ["batch_stats", "opt_state", "params", "step"]
  assert "mean" not in state["params"]["front"][0]["first"]["bn"]
  assert sorted(state["batch_stats"]["front"][0]["first"]["bn"]) == ["mean", "var"]
  # Moments only for the params: batch statistics are not optimized.
  assert len(jax.tree.leaves(state["opt_state"])) == 2 * len(jax.tree.leaves(state["params"])) + 1
  stats = jax.tree.map(lambda x: x + 0.5, state["batch_stats"])
  state = dict(state, batch_stats=stats)
  ckpt = checkpointing.Checkpointer(str(tmp_path / "ckpt"))
  ckpt.save(3, params=train.saved_state(state), opt_state=state["opt_state"], data_iter=None,
            meta={"model": checkpointing.model_config_to_json(cfg)})
  step, saved, _, _ = ckpt.restore_latest(train.abstract_of(train.saved_state(state)),
                                          train.abstract_of(state["opt_state"]), None)
  ckpt.close()
  params, restored_stats = factory.split_stats(saved, state["batch_stats"])
  assert step == 3
  for got, want in ((params, state["params"]), (restored_stats, stats)):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)))
  # A params-only read (evaluation) gets a model with these running statistics.
  loaded, loaded_cfg, _ = checkpointing.load_params(str(tmp_path / "ckpt"))
  model = factory.create(loaded_cfg, state=loaded)
  np.testing.assert_array_equal(model.front[1].skip.bn.var[...],
                                stats["front"][1]["skip"]["bn"]["var"])
  del loaded["front"]["2"]["second"]["bn"]["mean"]
  with pytest.raises(ValueError, match="batch statistic front/2/second/bn/mean has shape None"):
    factory.create(loaded_cfg, state=loaded)


def test_pretrained_tinymyo_encoder_initialises_the_speech_model(tmp_path):
  tiny_cfg = decode_variant("test", rope_mode="released")
  params = nnx.to_pure_dict(nnx.state(create_model(tiny_cfg, seed=3), nnx.Param))
  path = str(tmp_path / "pretrained")
  checkpointing.save_params(path, params, tiny_cfg)
  cfg = speech.SpeechConfig.from_variant("test", "recognition", rope_mode="released")
  init_params, rope_mode = finetune.pretrained_encoder(path, cfg)
  assert rope_mode == "released"
  _, state = train.init_state(cfg, sharding.make_mesh(-1, 1), optax.adamw(1e-3), seed=0,
                              init_params=init_params)
  np.testing.assert_array_equal(state["params"]["blocks"][1]["mlp"]["fc1"]["kernel"],
                                params["blocks"][1]["mlp"]["fc1"]["kernel"])
  np.testing.assert_array_equal(state["params"]["norm"]["scale"], params["norm"]["scale"])
  with pytest.raises(ValueError, match=r"\{'num_layers': \(2, 3\)\}"):
    finetune.pretrained_encoder(path, speech.SpeechConfig.from_variant("test", num_layers=3))


def test_layer_decay_and_freezing_for_speech_parameter_names():
  params = {"front": {0: {"w": 0.0}}, "w_raw_in": {"kernel": 0.0},
            "blocks": {0: {"w": 0.0}, 1: {"w": 0.0}}, "norm": {"scale": 0.0},
            "w_out": {"kernel": 0.0}}
  scales = tasks.core.lr_scales(params, num_layers=2, decay=0.5, freeze_backbone=False)
  assert scales["w_out"]["kernel"] == scales["norm"]["scale"] == 1.0
  assert scales["blocks"][1]["w"] == 0.5 and scales["blocks"][0]["w"] == 0.25
  assert scales["front"][0]["w"] == scales["w_raw_in"]["kernel"] == 0.125
  frozen = tasks.core.lr_scales(params, num_layers=2, decay=0.5, freeze_backbone=True)
  assert frozen["blocks"][0]["w"] == frozen["norm"]["scale"] == 0.0  # pretrained: frozen
  assert frozen["front"][0]["w"] == frozen["w_raw_in"]["kernel"] == frozen["w_out"]["kernel"] == 1.0
