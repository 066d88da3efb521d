"""The benchmark suite still runs end to end: `python -m bench --quick` on tiny sizes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("dispatch", "redis", "proxy", "hung", "quality", "memory")


def test_quick_run_prints_every_section_with_zero_errors() -> None:
    # The Python client instead of wrk, so the smoke test needs no Debian package.
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--http-client", "python"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in done.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| section")
    ]
    assert {row[0] for row in rows} == set(SECTIONS), done.stdout
    error_rows = [row for row in rows if row[1].endswith("errors")]
    assert {row[0] for row in error_rows} >= {"dispatch", "redis", "proxy", "hung", "memory"}
    for row in error_rows:
        assert row[2] == "0", f"{row[0]}: {row[1]} = {row[2]} ({row[3]})"
    assert any("shortest_queue" in row[1] for row in rows if row[0] == "quality")
    assert "targets met" in done.stdout
