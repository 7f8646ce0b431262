"""The gate's rerun of hung tests (tests/rerun_hung.py): only hangs, only once, only when they are all."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import rerun_hung  # noqa: E402


@pytest.fixture()
def hangs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(rerun_hung, "HANGS", tmp_path)
    monkeypatch.setattr(rerun_hung, "FAILED", tmp_path / "failed.json")
    return tmp_path


def hang(folder: Path, node: str, failed: list[str]) -> None:
    (folder / "gw0-1.txt").write_text(f"{node} still running 1200 s after it started:\nThread 0x1 ...\n")
    (folder / "failed.json").write_text(json.dumps(failed))


def test_reruns_the_hung_test_once_when_hangs_are_the_only_failures(hangs, monkeypatch, capsys) -> None:
    node = "tests/test_x.py::test_stuck"
    hang(hangs, node, [node])
    calls: list[list[str]] = []
    monkeypatch.setattr(rerun_hung.subprocess, "call", lambda cmd, cwd: calls.append(cmd) or 0)
    assert rerun_hung.main(["1", "-ra"]) == 0
    assert calls == [[sys.executable, "-m", "pytest", "-ra", node]]
    out = capsys.readouterr().out
    assert "HUNG: tests/test_x.py::test_stuck" in out and "Thread 0x1" in out and "PASSED" in out


def test_the_rerun_status_is_the_gate_status(hangs, monkeypatch) -> None:
    hang(hangs, "tests/test_x.py::test_stuck", ["tests/test_x.py::test_stuck"])
    monkeypatch.setattr(rerun_hung.subprocess, "call", lambda cmd, cwd: 1)
    assert rerun_hung.main(["1"]) == 1


def test_no_rerun_when_another_test_failed_or_nothing_hung(hangs, monkeypatch) -> None:
    monkeypatch.setattr(rerun_hung.subprocess, "call", lambda cmd, cwd: pytest.fail("must not rerun"))
    assert rerun_hung.main(["1"]) == 1  # a plain failure: no hang file
    hang(hangs, "tests/test_x.py::test_stuck", ["tests/test_x.py::test_stuck", "tests/test_y.py::test_bad"])
    assert rerun_hung.main(["1"]) == 1
    assert rerun_hung.main(["2"]) == 2  # interrupted or an internal error: never rerun
