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
