"""The real-data guard of the builder tests: skip naming the missing folder, or fail in CI."""

from __future__ import annotations

import pytest

from data_builders import testing


def test_present_path_is_returned(tmp_path):
  assert testing.need_shared(tmp_path) == tmp_path


def test_missing_path_skips_naming_the_first_missing_folder(tmp_path, monkeypatch):
  monkeypatch.delenv("TINYMYO_REQUIRE_SHARED", raising=False)
  with pytest.raises(pytest.skip.Exception, match=f"{tmp_path / 'shared'} does not exist"):
    testing.need_shared(tmp_path / "shared" / "data" / "ciil")


def test_missing_path_fails_when_shared_data_is_required(tmp_path, monkeypatch):
  monkeypatch.setenv("TINYMYO_REQUIRE_SHARED", "1")
  with pytest.raises(pytest.fail.Exception, match="TINYMYO_REQUIRE_SHARED is set"):
    testing.need_shared(tmp_path / "shared")
