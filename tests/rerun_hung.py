"""Run by ``make test`` when pytest fails: rerun, once, the tests that hung, if hangs were the only failures.

A test that stays stuck past its time limit has its worker ended by the backstop in ``conftest.py``,
which leaves every thread's stack in ``.cache/test-hangs/``. When every failed test of the run
(``failed.json`` there, written by ``conftest.py``) is such a hang, this prints the stacks, reruns
those tests once in one process, and exits with the rerun's status, saying so in capitals; any other
failure keeps the original status. A hang is still a bug to find: its stacks are in the log.

Usage: ``python tests/rerun_hung.py STATUS [pytest args]``, ``STATUS`` being the failed run's exit status.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Where the backstop in ``conftest.py`` writes (one ``<worker>-<pid>.txt`` per running test) and reads.
HANGS = ROOT / ".cache" / "test-hangs"
FAILED = HANGS / "failed.json"
#: The first line of a hang file, ahead of the stacks (written by ``conftest.py``, parsed here).
HANG_HEAD = "{node} still running {seconds:.0f} s after it started:"
_HANG_MARK = HANG_HEAD[HANG_HEAD.index("}") + 1 : HANG_HEAD.index("{seconds")]  # " still running "
#: pytest's status for "some tests failed" (others: interrupted, internal error, usage, no tests)
TESTS_FAILED = 1


def hung_tests(folder: Path) -> dict[str, str]:
    """node id -> the stacks the backstop wrote, for every hang file in ``folder``."""
    hung: dict[str, str] = {}
    for path in sorted(folder.glob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        first = text.splitlines()[0] if text else ""
        if _HANG_MARK in first:
            hung[first.split(_HANG_MARK)[0]] = text
    return hung


def failed_tests(path: Path) -> set[str]:
    return set(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else set()


def main(argv: list[str]) -> int:
    status, pytest_args = int(argv[0]), argv[1:]
    hung = hung_tests(HANGS)
    if status != TESTS_FAILED or not hung:
        return status
    other = failed_tests(FAILED) - set(hung)
    if other:
        print(f"rerun_hung: {len(other)} failure(s) besides the hang(s): no rerun", file=sys.stderr)
        return status
    for node, stacks in hung.items():
        print(f"\n===== HUNG: {node}: every thread's stack =====\n{stacks}", flush=True)
    for procs in sorted(HANGS.glob("*.procs.log")):  # the process tree and the JVMs' stacks
        print(f"\n===== {procs.name} =====\n{procs.read_text(encoding='utf-8', errors='replace')}")
    print(f"===== RERUNNING {len(hung)} HUNG TEST(S) ONCE: {' '.join(hung)} =====", flush=True)
    rc = subprocess.call([sys.executable, "-m", "pytest", *pytest_args, *hung], cwd=ROOT)
    verdict = "PASSED" if rc == 0 else "FAILED"
    print(f"===== THE RERUN OF THE HUNG TEST(S) {verdict}; the hang's stacks are above =====", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
