"""The on-disk model registry: versions appear only when fully written; the pointer names one."""

from __future__ import annotations

import json

import pytest

from dlnb.lifecycle.registry import ModelRegistry, RegistryError, write_json


def test_versions_are_numbered_and_the_pointer_moves(tmp_path):
    registry = ModelRegistry(tmp_path / "reg")
    assert registry.versions() == []
    first = registry.add(lambda folder: (folder / "w").write_text("1"))
    second = registry.add(lambda folder: (folder / "w").write_text("2"))
    assert (first, second) == ("v0001", "v0002") and registry.versions() == [first, second]
    registry.promote(second)
    assert registry.current() == second and (registry.path(second) / "w").read_text() == "2"
    assert json.loads((tmp_path / "reg" / "current").read_text()) == {"version": "v0002"}


def test_a_failed_save_leaves_no_version(tmp_path):
    registry = ModelRegistry(tmp_path)

    def broken(folder):
        (folder / "half").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        registry.add(broken)
    assert registry.versions() == [] and list(tmp_path.iterdir()) == []


def test_the_pointer_must_name_a_saved_version(tmp_path):
    registry = ModelRegistry(tmp_path)
    with pytest.raises(RegistryError, match="pointer .* is missing.*none saved yet"):
        registry.current()
    with pytest.raises(RegistryError, match="no model version 'v0001'"):
        registry.promote("v0001")
    registry.add(lambda folder: None)
    (tmp_path / "current").write_text('["v0001"]')
    with pytest.raises(RegistryError, match=r"corrupt \(TypeError"):
        registry.current()


def test_write_json_replaces_the_file_whole(tmp_path):
    path = write_json(tmp_path / "a" / "s.json", {"step": 1})
    write_json(path, {"step": 2})
    assert json.loads(path.read_text()) == {"step": 2}
    assert [p.name for p in path.parent.iterdir()] == ["s.json"]
