"""scikit-learn estimators: the project's fine-tuning under `fit`, grouped validation, sklearn's
estimator checks, `cross_val_score` with GroupKFold, pickling."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.model_selection import GroupKFold, cross_val_score  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from tinymyo_jax.estimators import (  # noqa: E402
    TinyMyoClassifier, TinyMyoRegressor, validation_split)

# Tiny model, one short epoch: the 2-layer `test` variant, 3 steps of 8 windows.
FAST = dict(variant="test", num_epochs=1, warmup_epochs=0, batch_size=8, patience=1)

# sklearn's generic checks fit on 2-D tables [n_samples, n_features]; TinyMyo takes windows
# [N, channels, samples], so every check that needs a successful fit on 2-D data must fail.
TWO_D = "fits on a 2-D table; TinyMyo takes 3-D windows [N, channels, samples]"
EXPECTED_FAILED = {name: TWO_D for name in (
    "check_fit_score_takes_y", "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters", "check_estimators_fit_returns_self",
    "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_dtype_object",
    "check_pipeline_consistency", "check_estimators_nan_inf", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_classifier_data_not_an_array",
    "check_classifiers_classes", "check_classifiers_train", "check_supervised_y_2d",
    "check_regressors_train", "check_regressor_data_not_an_array",
    "check_regressors_no_decision_function", "check_regressors_int",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance",
    "check_dict_unchanged", "check_fit_idempotent", "check_fit_check_is_fitted",
    "check_n_features_in", "check_fit2d_predict1d")}
EXPECTED_FAILED.update(
    check_fit2d_1sample="expects a 2-D one-sample message; 2-D input is refused as such",
    check_fit2d_1feature="expects a 2-D one-feature message; 2-D input is refused as such")


def windows(subjects=4, per_subject=10, channels=4, samples=40, seed=0):
  """Two classes: class 'fist' has 3x the amplitude on channel 0."""
  rng = np.random.default_rng(seed)
  n = subjects * per_subject
  y = np.array(["rest", "fist"] * (n // 2))
  x = rng.standard_normal((n, channels, samples)).astype(np.float32)
  x[y == "fist", 0] *= 3.0
  return x, y, np.repeat(np.arange(subjects) + 1, per_subject)


@parametrize_with_checks([TinyMyoClassifier(**FAST), TinyMyoRegressor(**FAST)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_checks(estimator, check):
  check(estimator)


def test_validation_split_holds_out_whole_subjects_or_stratifies():
  _, y, g = windows(subjects=5)
  train, val = validation_split(len(y), fraction=0.2, seed=0, groups=g)
  assert set(g[train]).isdisjoint(g[val]) and len(set(g[val])) == 1
  train, val = validation_split(len(y), fraction=0.2, seed=0, y=y)
  assert sorted(np.unique(y[val], return_counts=True)[1]) == [5, 5]
  with pytest.raises(ValueError, match="single group"):
    validation_split(len(y), fraction=0.2, seed=0, groups=np.ones(len(y)))
  with pytest.raises(ValueError, match=r"validation_fraction=1.5; expected a value in \(0, 1\)"):
    validation_split(len(y), fraction=1.5, seed=0)


@pytest.fixture(scope="module")
def pretrained_file(tmp_path_factory):
  """A `test`-variant reconstruction model written as our safetensors export."""
  from flax import nnx

  from export.to_torch import params_to_official, write_safetensors
  from tinymyo_jax.models.tinymyo import create_model, decode_variant

  pytest.importorskip("safetensors")
  model = create_model(decode_variant("test"), seed=3)
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  path = tmp_path_factory.mktemp("init") / "encoder.safetensors"
  write_safetensors(params_to_official(params, model.config), str(path), model.config)
  return str(path), np.asarray(params["patch_embed"]["kernel"])


@pytest.fixture(scope="module")
def fitted(pretrained_file):
  x, y, g = windows()
  clf = TinyMyoClassifier(init_from=pretrained_file[0], **FAST).fit(x, y, groups=g)
  return clf, x, y


def test_fit_runs_the_finetuning_loop_from_the_pretrained_file(fitted, pretrained_file):
  clf, x, y = fitted
  assert list(clf.classes_) == ["fist", "rest"] and clf.variant_ == "test"
  # One of four subjects held out for early stopping: 10 of 40 windows.
  assert (clf.fit_summary_["num_train"], clf.fit_summary_["num_validation"]) == (30, 10)
  assert clf.fit_summary_["steps"] == 4  # one epoch of ceil(30 / 8) steps
  kernel = clf.params_["patch_embed"]["kernel"]
  assert 0 < np.abs(kernel - pretrained_file[1]).max() < 0.05  # started from the file, trained
  proba = clf.predict_proba(x)
  assert proba.shape == (40, 2) and np.allclose(proba.sum(1), 1.0)
  assert set(clf.predict(x)) <= {"fist", "rest"} and 0.0 <= clf.score(x, y) <= 1.0
  with pytest.raises(ValueError, match="X has 3 channels, the estimator was fitted on 4"):
    clf.predict(x[:, :3])
  assert clf.get_params()["init_from"] == pretrained_file[0]


def test_pickle_and_joblib_keep_the_predictions(fitted):
  import joblib

  clf, x, _ = fitted
  want = clf.predict_proba(x)
  np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(x), want)
  buf = io.BytesIO()
  joblib.dump(clf, buf)
  buf.seek(0)
  np.testing.assert_array_equal(joblib.load(buf).predict_proba(x), want)


def test_cross_val_score_with_group_kfold_over_subjects():
  x, y, g = windows()
  scores = cross_val_score(TinyMyoClassifier(**FAST), x, y, groups=g, cv=GroupKFold(2),
                           params={"groups": g})
  assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))


def test_regressor_predicts_in_the_shape_of_y():
  x, _, g = windows()
  y = np.stack([x[:, 0].std(axis=1), x[:, 1].mean(axis=1)], axis=1)  # [N, 2]
  reg = TinyMyoRegressor(**FAST).fit(x, y, groups=g)
  assert reg.predict(x).shape == (40, 2) and np.isfinite(reg.score(x, y))
  assert reg.fit_summary_["num_validation"] == 10  # one subject of four
