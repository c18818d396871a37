"""Streaming inference on a real UCI recording with a small classification checkpoint."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from flax import nnx

from data_builders import emg_common
from data_builders.uci_emg import uci_emg_dataset_builder as uci
from tinymyo_jax import checkpointing, infer, input_pipeline
from tinymyo_jax.models.tinymyo import create_model, decode_variant

from .conftest import SHARED, UCI_SAMPLE_ZIP, need_shared, run_python

MEMBER = "EMG_data_for_gestures-master/01/1_raw_data_13-12_22.03.16.txt"
ROWS = 14000  # ~14.5 s: rest, fist and wrist flexion, unmarked between
DATA_META = {"sample_rate_hz": 1000.0, "num_channels": 8, "window": 1000,
             "normalization": "zscore", "class_names": list(uci.CLASS_NAMES),
             "filter": {"band": [20.0, 90.0], "notch": 50.0}}


def _save(directory, head="classification", data=DATA_META):
  cfg = decode_variant("test", head=head, num_channels=8, num_outputs=6, rope_mode="released")
  model = create_model(cfg, seed=1)
  extra = {"task": "uci"} | ({"data": data} if data is not None else {})
  checkpointing.save_params(str(directory), nnx.to_pure_dict(nnx.state(model, nnx.Param)), cfg,
                            extra_meta=extra)
  return str(directory), model


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
  return _save(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def classifier(ckpt):
  return infer.Classifier(ckpt[0], batch_size=8)


@pytest.fixture(scope="module")
def uci_txt(tmp_path_factory):
  with zipfile.ZipFile(UCI_SAMPLE_ZIP) as archive:
    lines = archive.read(MEMBER).split(b"\r\n")
  path = tmp_path_factory.mktemp("uci") / "1_raw_data_13-12_22.03.16.txt"
  path.write_bytes(b"\r\n".join(lines[:ROWS + 1]) + b"\r\n")
  return path


def _training_view(path):
  """The recording exactly as the uci_emg builder's default config writes it (1 kHz, filtered)."""
  time_ms, emg, classes = uci.parse_recording(path.read_bytes(), str(path))
  return uci.process_recording(time_ms, emg, classes, uci.Builder.BUILDER_CONFIGS[0])


def test_uci_windows_match_the_training_preprocessing(classifier, ckpt, uci_txt):
  rec = infer.prepare_recording(infer.read_recording(str(uci_txt)), classifier.spec)
  result = infer.classify(classifier, rec, hop=500, progress=False)
  emg_ct, labels = _training_view(uci_txt)
  assert rec.emg_ct.shape == emg_ct.shape
  n = (emg_ct.shape[1] - 1000) // 500 + 1
  windows = result["windows"]
  assert len(windows) == n == result["summary"]["num_windows"]
  assert [w["start_s"] for w in windows] == [0.5 * k for k in range(n)]
  assert all(w["end_s"] == w["start_s"] + 1.0 for w in windows)
  # Same numbers as the model applied to the builder's windows, z-scored as in training.
  model = ckpt[1]
  for k in (0, n // 2, n - 1):
    x = input_pipeline.zscore_per_channel(emg_ct[:, 500 * k:500 * k + 1000].astype(np.float32))
    probs = np.asarray(nnx.softmax(model(x[None]), axis=-1))[0]
    assert windows[k]["class_id"] == int(probs.argmax())
    assert windows[k]["probability"] == pytest.approx(float(probs.max()), abs=1e-5)
  # Ground truth only for windows inside one gesture run; the accuracy is over those.
  truth = [w["true_class"] for w in windows]
  inside = [k for k in range(n) if (labels[500 * k:500 * k + 1000] == labels[500 * k]).all()
            and labels[500 * k] not in (0, 7)]
  assert [k for k, t in enumerate(truth) if t is not None] == inside
  assert {truth[k] for k in inside} == {"rest", "fist", "wrist_flexion"}
  s = result["summary"]
  assert s["labelled_windows"] == len(inside)
  assert s["accuracy"] == pytest.approx(np.mean([windows[k]["class"] == truth[k]
                                                 for k in inside]))
  assert s["latency_ms_mean"] > 0 and s["latency_ms_p95"] >= s["latency_ms_p50"]
  json.dumps(result)


def test_npy_input_same_as_txt_and_rate_checks(classifier, uci_txt, tmp_path):
  raw = infer.read_recording(str(uci_txt))  # held 1 kHz grid, unfiltered
  npy = tmp_path / "rec.npy"
  np.save(npy, raw.emg_ct.astype(np.float32))
  from_txt = infer.classify(classifier, infer.prepare_recording(raw, classifier.spec), hop=1000,
                            progress=False)["windows"]
  rec = infer.read_recording(str(npy), sample_rate=1000.0)
  from_npy = infer.classify(classifier, infer.prepare_recording(rec, classifier.spec), hop=1000,
                            progress=False)["windows"]
  assert [w["class_id"] for w in from_npy] == [w["class_id"] for w in from_txt]
  np.testing.assert_allclose([w["probability"] for w in from_npy],
                             [w["probability"] for w in from_txt], atol=1e-5)
  fast = infer.Recording(emg_common.resample_rational(raw.emg_ct, 2, 1), 2000.0, "fast.npy")
  with pytest.raises(infer.InferenceError, match="sampled at 2000 Hz, the checkpoint at 1000 Hz; "
                                                 "pass --resample"):
    infer.prepare_recording(fast, classifier.spec)
  resampled = infer.prepare_recording(fast, classifier.spec, resample=True)
  assert abs(resampled.emg_ct.shape[1] - raw.emg_ct.shape[1]) <= 1
  with pytest.raises(infer.InferenceError, match="needs --sample_rate"):
    infer.read_recording(str(npy))
  with pytest.raises(infer.InferenceError, match="--sample_rate 2000 Hz contradicts the file's "
                                                 "1000 Hz"):
    infer.read_recording(str(uci_txt), sample_rate=2000.0)


def test_bad_recordings(classifier):
  rng = np.random.default_rng(0)
  seven = infer.Recording(rng.normal(size=(7, 5000)), 1000.0, "seven.npy")
  with pytest.raises(infer.InferenceError, match="has 7 channels, the checkpoint expects 8"):
    infer.prepare_recording(seven, classifier.spec)
  picked = infer.prepare_recording(
      infer.Recording(rng.normal(size=(10, 5000)), 1000.0, "ten.npy"), classifier.spec,
      channels=[0, 1, 2, 3, 4, 5, 6, 9])
  assert picked.emg_ct.shape == (8, 5000)
  short = infer.Recording(rng.normal(size=(8, 900)), 1000.0, "short.npy")
  with pytest.raises(infer.InferenceError, match=r"900 samples \(0.9 s\) at 1000 Hz, shorter "
                                                 "than one window of 1000 samples"):
    infer.prepare_recording(short, classifier.spec)
  with pytest.raises(infer.InferenceError, match="hop must be a positive"):
    infer.classify(classifier, infer.prepare_recording(picked, classifier.spec), hop=0)


def test_ninapro_mat_rate_and_channels(classifier):
  path = need_shared(SHARED / "data" / "ninapro_samples" / "db5" / "S1_E1_A1.mat")
  rec = infer.read_recording(str(path))
  assert rec.rate_hz == 200.0 and rec.emg_ct.shape == (16, 130267)
  with pytest.raises(infer.InferenceError, match="has 16 channels, the checkpoint expects 8"):
    infer.prepare_recording(rec, classifier.spec)
  with pytest.raises(infer.InferenceError, match="sampled at 200 Hz, the checkpoint at 1000 Hz"):
    infer.prepare_recording(rec, classifier.spec, channels=list(range(8)))
  up = infer.prepare_recording(rec, classifier.spec, channels=list(range(8)), resample=True)
  assert up.rate_hz == 1000.0 and up.emg_ct.shape == (8, 5 * 130267)


def test_bad_checkpoints(tmp_path):
  with pytest.raises(checkpointing.CheckpointError, match="does not exist"):
    infer.Classifier(str(tmp_path / "missing"))
  recon, _ = _save(tmp_path / "recon", head="reconstruction")
  with pytest.raises(infer.InferenceError, match="has a 'reconstruction' head"):
    infer.Classifier(recon)
  bare, _ = _save(tmp_path / "bare", data=None)
  with pytest.raises(infer.InferenceError, match=r"has no meta\['data'\]"):
    infer.Classifier(bare)
  fewer, _ = _save(tmp_path / "fewer", data=DATA_META | {"class_names": ["a", "b"]})
  with pytest.raises(infer.InferenceError, match="2 class names but the head has 6 outputs"):
    infer.Classifier(fewer)


def test_cli_table_and_json(ckpt, uci_txt, tmp_path):
  out = tmp_path / "pred.json"
  proc = run_python(["-m", "tinymyo_jax.infer", "--ckpt", ckpt[0], str(uci_txt), "--hop", "2000",
                     "--batch_size", "4", "--out", str(out)])
  lines = proc.stdout.strip().splitlines()
  assert lines[0].split()[:6] == ["#", "start_s", "end_s", "class", "prob", "lat_ms"]
  result = json.loads(out.read_text())
  n = result["summary"]["num_windows"]
  assert len(lines) == n + 2 and n == len(result["windows"]) >= 6
  assert lines[-1].startswith(f"{n} windows of 1000 samples, hop 2000")
  assert result["summary"]["checkpoint"] == ckpt[0]


def test_cli_error_exit_code(ckpt, uci_txt, tmp_path, capsys):
  code = infer.main(["--ckpt", ckpt[0], str(uci_txt), "--sample_rate", "500", "--out",
                     str(tmp_path / "no.json")])
  assert code == 2
  err = capsys.readouterr().err
  assert err.startswith("error:") and "--sample_rate 500 Hz contradicts the file's 1000 Hz" in err
  assert not (tmp_path / "no.json").exists()
  code = infer.main(["--ckpt", str(tmp_path / "nothing"), str(uci_txt)])
  assert code == 2 and "does not exist" in capsys.readouterr().err


def test_npy_that_is_not_an_array_gets_one_line(ckpt, tmp_path, capsys):
  noise = tmp_path / "noise.npy"
  noise.write_bytes(np.random.default_rng(0).bytes(4096))
  code = infer.main(["--ckpt", ckpt[0], str(noise), "--sample_rate", "1000"])
  err = capsys.readouterr().err
  assert code == 2 and err.count("\n") == 1
  assert err.startswith(f"error: {noise}: not a .npy array file (no NumPy header)")
  good = tmp_path / "good.npy"
  np.save(good, np.ones((8, 3000), np.float32))
  cut = tmp_path / "cut.npy"
  cut.write_bytes(good.read_bytes()[:500])
  with pytest.raises(infer.InferenceError, match=r"cut.npy: unreadable .npy array \(ValueError: "
                                                 r"Failed to read all data"):
    infer.read_recording(str(cut), sample_rate=1000.0)
  np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
  with pytest.raises(infer.InferenceError, match=r"objects.npy: unreadable .npy array "
                                                 r"\(ValueError: Object arrays cannot be loaded"):
    infer.read_recording(str(tmp_path / "objects.npy"), sample_rate=1000.0)
  np.save(tmp_path / "complex.npy", np.ones((8, 3000), complex))
  with pytest.raises(infer.InferenceError, match="complex.npy: array of dtype complex128, "
                                                 "expected real numbers"):
    infer.read_recording(str(tmp_path / "complex.npy"), sample_rate=1000.0)
