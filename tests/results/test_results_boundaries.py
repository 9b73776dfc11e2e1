"""`results` imports no torch, ray, trainers or sweeper (shared/DESIGN.md), so a laptop
without a GPU stack can analyse a cluster's store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_results_and_report_command_import_no_gpu_stack() -> None:
    modules = sorted(
        "results." + ".".join(p.relative_to(ROOT / "results").with_suffix("").parts)
        for p in (ROOT / "results").rglob("*.py")
        if p.name != "__init__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r} + ['sweeper.cli.report']:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'ray', 'trainers'}"
        " or (m.startswith('sweeper') and m not in {'sweeper', 'sweeper.cli', 'sweeper.cli.report'}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"imported: {out.stdout}"
    assert len(modules) >= 10
