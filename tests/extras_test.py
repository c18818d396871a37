"""The core install works without any extra; a missing extra ends a command in one line naming it.

Each run is a fresh process in which the extras' packages cannot be imported (an import hook
refuses them, as if they were not installed), whatever this environment has.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.conftest import UCI_SAMPLE_ZIP, run_python
from tinymyo_jax import extras

ALL_EXTRAS = sorted(extras.PROVIDED_BY)
WITHOUT = textwrap.dedent("""
    import importlib.abc, runpy, sys
    class NotInstalled(importlib.abc.MetaPathFinder):
      def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
          raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
    sys.meta_path.insert(0, NotInstalled())
    sys.argv = {argv!r}
    {run}
""")


def without(blocked, module=None, *args, code=None, check=True):
  """Runs `python -m module args` (or `code`) in a process where `blocked` are not installed."""
  run = code or f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
  return run_python(["-c", WITHOUT.format(blocked=list(blocked), argv=[module or "-c", *args],
                                          run=run)], check=check)


def one_error_line(proc, extra: str):
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode != 0 and len(lines) == 1, proc.stderr[-3000:]
  assert lines[0].startswith("error: ") and f"tinymyo-jax[{extra}]" in lines[0], lines[0]
  return lines[0]


@pytest.mark.integration
def test_core_install_builds_data_and_trains_without_any_extra(tmp_path):
  without(ALL_EXTRAS, "data_builders.build", "uci_emg", f"--manual_dir={UCI_SAMPLE_ZIP.parent}",
          f"--data_dir={tmp_path / 'tfds'}")
  assert list((tmp_path / "tfds" / "uci_emg").rglob("dataset_info.json"))
  without(ALL_EXTRAS, "tinymyo_jax.main", "--config=configs/pretrain.py:smoke",
          f"--workdir={tmp_path / 'run'}", "--config.total_steps=2", "--config.eval_every=2",
          "--config.eval_batches=1", "--config.checkpoint_every=2")
  summary = json.loads((tmp_path / "run" / "summary.json").read_text())
  assert summary["steps"] == 2
  code = "import tinymyo_jax; from tinymyo_jax import evaluate, finetune, infer; print('ok')"
  assert without(ALL_EXTRAS, code=code).stdout.strip() == "ok"


def test_a_missing_extra_is_named_in_one_line(tmp_path):
  code = "from tinymyo_jax.estimators import TinyMyoClassifier"
  proc = without(["sklearn"], code=code, check=False)
  assert proc.returncode != 0
  assert ("MissingExtraError: TinyMyoClassifier / TinyMyoRegressor needs 'sklearn', which is "
          "not installed; it comes with the 'sklearn' extra: pip install 'tinymyo-jax[sklearn]'"
          ) in proc.stderr, proc.stderr[-3000:]

  ckpt = tmp_path / "missing"  # the extra is checked before the checkpoint is read
  line = one_error_line(without(["torch"], "export.all", f"--ckpt={ckpt}",
                                f"--out_dir={tmp_path / 'out'}", check=False), "export")
  assert line.startswith("error: export needs 'torch', which is not installed")
  weights = tmp_path / "w.safetensors"
  weights.write_bytes(b"")
  code = f"import tinymyo_jax; tinymyo_jax.from_pretrained({str(weights)!r}, n_outputs=2)"
  proc = without(["safetensors"], code=code, check=False)
  assert "reading .safetensors needs 'safetensors', which is not installed" in proc.stderr

  line = one_error_line(without(["apache_beam"], "data_builders.build", "uci_emg",
                                f"--manual_dir={UCI_SAMPLE_ZIP.parent}",
                                f"--data_dir={tmp_path / 'tfds'}",
                                "--beam_pipeline_options=runner=DirectRunner", check=False),
                        "beam")
  assert "Beam pipeline options need 'apache_beam'" in line
  assert not (tmp_path / "tfds").exists()
