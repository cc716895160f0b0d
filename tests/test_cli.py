import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlnb import runtime as gpu
from dlnb.__main__ import main
from dlnb.data import registry as data

ROOT = Path(__file__).resolve().parent.parent


def test_pack_then_pull_from_the_archive_into_an_empty_data_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DLNB_DATA", str(tmp_path / "prepared"))
    archive = tmp_path / "workshop.tar"
    assert main(["data", "pack", str(archive), "digits"]) == 0
    assert f"wrote {archive}" in capsys.readouterr().out

    offline = tmp_path / "offline-room"
    monkeypatch.setenv("DLNB_DATA", str(offline))
    assert main(["data", "verify", "digits"]) == 0
    assert "not cached" in capsys.readouterr().out
    assert main(["data", "pull", "--from", str(archive)]) == 0
    assert f"restored digits -> {offline / 'digits' / 'digits.npz'}" in capsys.readouterr().out
    assert main(["data", "verify", "digits"]) == 0
    assert capsys.readouterr().out.split() == ["digits", "ok"]

    path = data.cache_path("digits")
    path.write_bytes(path.read_bytes()[:1000])
    assert main(["data", "verify", "digits"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("digits") and "FAILED" in out and str(path) in out


def test_pull_caches_a_dataset(tmp_data_dir, capsys):
    assert main(["data", "pull", "digits"]) == 0
    assert "ok digits" in capsys.readouterr().out
    assert data.cache_path("digits").exists()


def test_errors_are_one_clear_line_and_exit_1(tmp_data_dir, tmp_path, capsys):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not an archive" * 100)
    assert main(["data", "pull", "--from", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "corrupt or truncated" in err
    assert main(["data", "pull", "--from", str(tmp_path / "missing.tar")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["data", "pull", "mnsit"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Unknown dataset 'mnsit'") and "mnist" in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["data"])
    assert exit_.value.code == 2
    with pytest.raises(SystemExit):
        main(["data", "shred"])
    assert "invalid choice" in capsys.readouterr().err


def test_doctor_command_prints_the_report(monkeypatch, capsys):
    monkeypatch.setattr(gpu, "_driver_cuda_version", lambda: None)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "cuda_available" in out


def test_python_m_dlnb_data_list_runs(tmp_data_dir):
    env = {**os.environ, "DLNB_DATA": str(tmp_data_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "dlnb", "data", "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    names = {line.split()[0] for line in lines[:-1]}
    assert {"mnist", "digits"} <= names
    assert any(line.startswith("mnist") and "not cached" in line for line in lines)
    assert lines[-1] == f"cache: {tmp_data_dir}"


def test_pull_from_an_archive_with_unpinned_data_needs_allow_unverified(
    tmp_path, monkeypatch, capsys
):
    # Issue 15 item 3: `cifar10` has no pinned checksums; a restore must say it is unverified.
    import io
    import json
    import tarfile

    import numpy as np

    monkeypatch.setenv("DLNB_DATA", str(tmp_path / "room"))
    arrays = {"x_train": np.zeros((2, 32, 32, 3), np.uint8), "y_train": np.array([7, 7])}
    blob = io.BytesIO()
    np.savez(blob, **arrays)
    manifest = json.dumps({"datasets": {"cifar10": data.get_spec("cifar10").digest(arrays)}})
    archive = tmp_path / "forged.tar"
    with tarfile.open(archive, "w") as tar:
        for name, payload in (
            ("cifar10/cifar10.npz", blob.getvalue()),
            ("dlnb-data.json", manifest.encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    assert main(["data", "pull", "--from", str(archive)]) == 1
    assert "no pinned checksums" in capsys.readouterr().err
    assert main(["data", "pull", "--from", str(archive), "--allow-unverified"]) == 0
    assert "(UNVERIFIED: no pinned checksums)" in capsys.readouterr().out
    assert main(["data", "verify", "cifar10"]) == 0
    assert "ok (UNVERIFIED: restored from archive" in capsys.readouterr().out


def test_an_unwritable_cache_is_an_error_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("DLNB_DATA", str(tmp_path / "a-file" / "cache"))
    assert main(["data", "pull", "digits"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot write the digits cache") and "DLNB_DATA" in err
