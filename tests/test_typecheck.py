"""The type checker and the linter run in CI.

mypy (configured in ``pyproject.toml``'s ``[tool.mypy]``) reports no error in the core;
outside it (``tests/typecheck_ratchet.json``) the count of each path prefix may only
go down, and the test says when a number can be lowered. ``ruff check`` (``[tool.ruff]``)
passes over the whole tree, and ``ruff format --check`` (``[tool.ruff.format]``) finds
nothing to reformat: the layout is the formatter's, never a reviewer's.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RATCHET = Path(__file__).with_name("typecheck_ratchet.json")
ERROR = re.compile(r"^(?P<path>[^:\s]+\.py):\d+: error: ")


def _budget() -> dict[str, int]:
    return {k: v for k, v in json.loads(RATCHET.read_text()).items() if not k.startswith("_")}


def group_errors(output: str, budget: dict[str, int]) -> Counter:
    """Errors per ratchet prefix; ``core`` for every file no prefix covers."""
    counts: Counter = Counter()
    for line in output.splitlines():
        m = ERROR.match(line)
        if m:
            path = m["path"].replace("\\", "/")
            counts[next((p for p in budget if path.startswith(p)), "core")] += 1
    return counts


def check_ratchet(counts: Counter, budget: dict[str, int]) -> list[str]:
    """What breaks the ratchet: any core error, a prefix over its budget."""
    problems = [f"{counts['core']} mypy error(s) in the core, which has none: fix them"] if counts["core"] else []
    problems += [
        f"{prefix}: {counts[prefix]} mypy errors, over the ratchet's {limit}: fix the new ones"
        for prefix, limit in budget.items()
        if counts[prefix] > limit
    ]
    return problems


def test_the_ratchet_catches_a_new_error() -> None:
    """The grouping and the check themselves: a new core error or one over a budget fails."""
    budget = {"lithops_bridge/": 1}
    out = "ephemera/vm/agent.py:3: error: x  [arg-type]\nlithops_bridge/a.py:1: error: y\nlithops_bridge/b.py:2: error: z\n"
    counts = group_errors(out, budget)
    assert counts == Counter({"core": 1, "lithops_bridge/": 2})
    assert len(check_ratchet(counts, budget)) == 2
    assert check_ratchet(group_errors("lithops_bridge/a.py:1: error: y\n", budget), budget) == []


@pytest.mark.slow
def test_mypy_core_has_no_errors_and_the_rest_only_shrinks(capsys) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    budget = _budget()
    counts = group_errors(done.stdout, budget)
    # 1 with no error line: mypy is missing or crashed (2: a config error); neither may pass as "no errors"
    assert done.returncode == 0 or (done.returncode == 1 and counts), done.stdout + done.stderr
    problems = check_ratchet(counts, budget)
    assert not problems, "\n".join(problems) + "\n" + done.stdout
    lower = {p: counts[p] for p, limit in budget.items() if counts[p] < limit}
    if lower:
        with capsys.disabled():
            print(f"\nmypy ratchet: lower {RATCHET.name} to {lower}")


def test_ruff_check_passes() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff is not None, "ruff is not installed: pip install -e '.[test]'"
    done = subprocess.run([ruff, "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_finds_nothing_to_reformat() -> None:
    """Every Python file is as ``ruff format`` writes it (``make lint`` checks the same).

    The fix is ``ruff format .``; ``ephemera/vm/bootstrap.py`` is excluded in
    ``[tool.ruff.format]`` (one program copied whole into every VM's user data, which
    formatted would pass the 400-line module bound).
    """
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff is not None, "ruff is not installed: pip install -e '.[test]'"
    done = subprocess.run([ruff, "format", "--check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, "run `ruff format .`; these files are not formatted:\n" + done.stdout + done.stderr
