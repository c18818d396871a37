"""TinyMyo in JAX/Flax.

`from_pretrained(path, n_chans=, n_outputs=, n_times=)` loads released, braindecode or our own
weights; `TinyMyoClassifier` / `TinyMyoRegressor` are scikit-learn estimators (they need the
`sklearn` extra and are imported on first use).
"""

from tinymyo_jax.pretrained import from_pretrained

_ESTIMATORS = ("TinyMyoClassifier", "TinyMyoRegressor")


def __getattr__(name):
  if name in _ESTIMATORS:
    from tinymyo_jax import estimators
    return getattr(estimators, name)
  raise AttributeError(f"module 'tinymyo_jax' has no attribute {name!r}")


__all__ = ["from_pretrained", *_ESTIMATORS]
