"""Import layering, read from the source with `ast` (nested imports included).

`export` builds on `tinymyo_jax`, never the reverse; the models know nothing about data,
training, tasks or evaluation.
"""

from __future__ import annotations

import ast

from tests.conftest import REPO

LIB = REPO / "tinymyo_jax"
# Project modules a model module may import: other model modules and the shared speech units.
MODEL_DEPS = ("tinymyo_jax.models", "tinymyo_jax.speech_units")
DATA_AND_TRAINING = ("input_pipeline", "speech_pipeline", "train", "finetune", "tasks",
                     "steps", "evaluate", "metrics",
                     "checkpointing", "optim", "infer", "reporting")


def imported_modules(path) -> set[str]:
  """Every module `path` imports; `from a import b` gives both "a" and "a.b"."""
  names = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      assert node.level == 0, f"{path}: relative import"
      names.add(node.module)
      names.update(f"{node.module}.{alias.name}" for alias in node.names)
  return names


def test_the_library_never_imports_export():
  files = sorted(LIB.rglob("*.py"))
  assert len(files) > 20
  bad = {str(f.relative_to(REPO)): sorted(m for m in imported_modules(f)
                                          if m == "export" or m.startswith("export."))
         for f in files}
  assert not {f: m for f, m in bad.items() if m}


def test_models_import_no_data_or_training_module():
  files = sorted((LIB / "models").glob("*.py"))
  assert {f.name for f in files} >= {"layers.py", "tinymyo.py", "speech.py", "factory.py"}
  for f in files:
    project = {m for m in imported_modules(f)
               if m.split(".")[0] in ("tinymyo_jax", "configs", "data_builders", "export")}
    outside = {m for m in project if not any(m == d or m.startswith(d + ".") for d in MODEL_DEPS)
               and m != "tinymyo_jax"}
    assert not outside, f"{f.name} imports {sorted(outside)}"
    forbidden = {m for m in project for name in DATA_AND_TRAINING
                 if m == f"tinymyo_jax.{name}" or m.startswith(f"tinymyo_jax.{name}.")}
    assert not forbidden, f"{f.name} imports {sorted(forbidden)}"


def test_the_checker_sees_nested_imports(tmp_path):
  src = tmp_path / "m.py"
  src.write_text("def f():\n  from export.gap9 import quantize\n  import export.all\n")
  assert {"export.gap9", "export.gap9.quantize", "export.all"} <= imported_modules(src)


def project_imports(path) -> set[str]:
  return {m for m in imported_modules(path)
          if m.split(".")[0] in ("tinymyo_jax", "configs", "data_builders", "export")}


def test_task_types_and_evaluation_never_import_the_trainer():
  files = sorted((LIB / "tasks").glob("*.py")) + [LIB / "evaluate.py"]
  assert {f.name for f in files} >= {"core.py", "classification.py", "speech.py", "evaluate.py"}
  for f in files:
    bad = {m for m in project_imports(f)
           if m in ("tinymyo_jax.train", "tinymyo_jax.finetune", "tinymyo_jax.main")}
    assert not bad, f"{f.name} imports {sorted(bad)}"


def test_data_modules_never_import_the_model_or_training():
  files = ([LIB / "input_pipeline.py", LIB / "speech_pipeline.py"]
           + [f for f in (REPO / "data_builders").rglob("*.py") if not f.name.endswith("_test.py")])
  for f in files:
    bad = {m for m in project_imports(f)
           if m.startswith(("tinymyo_jax.models", "tinymyo_jax.tasks", "tinymyo_jax.train",
                            "export"))
           or (f.parent.name != "tinymyo_jax" and m.startswith("tinymyo_jax"))}
    assert not bad, f"{f.relative_to(REPO)} imports {sorted(bad)}"
