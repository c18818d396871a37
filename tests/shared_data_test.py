"""A clone without ../shared: library defaults stay inside the repository, tests skip clearly."""

from __future__ import annotations

import pathlib
import re

import pytest

from tests import conftest


def test_library_data_defaults_are_the_bundled_uci_sample():
  from export import parity
  from export.gap9 import windows

  for path in (pathlib.Path(parity.UCI_ZIP), windows.UCI_ZIP):
    assert path.resolve() == conftest.UCI_SAMPLE_ZIP.resolve()
    assert conftest.REPO in path.resolve().parents and path.is_file()
  x = parity.uci_windows(2)
  assert x.shape == (2, 8, 1000)
  x, y = windows.load_windows("test", subjects=[20], stride=1000)
  assert x.shape[1:] == (8, 1000) and len(x) == len(y) > 0


def test_missing_shared_file_skips_naming_the_missing_folder(tmp_path, monkeypatch):
  monkeypatch.setattr(conftest, "REQUIRE_SHARED", False)
  wanted = tmp_path / "shared" / "reference" / "fixture.npz"
  missing = re.escape(f"but {tmp_path / 'shared'} does not exist")
  with pytest.raises(pytest.skip.Exception, match=missing):
    conftest.need_shared(wanted)
  (tmp_path / "shared" / "reference").mkdir(parents=True)
  with pytest.raises(pytest.skip.Exception, match=re.escape(f"but {wanted} does not exist")):
    conftest.need_shared(wanted)
  monkeypatch.setattr(conftest, "REQUIRE_SHARED", True)  # CI: absent shared data is a failure
  with pytest.raises(pytest.fail.Exception, match="TINYMYO_REQUIRE_SHARED is set: needs"):
    conftest.need_shared(wanted)
  wanted.write_bytes(b"")
  assert conftest.need_shared(wanted) == wanted
