"""The package boundaries of DESIGN.md, read from the source's import statements.

`trainers` runs inside a trial and talks outward only through a reporter: no ray, sweeper or
results. `results` must open a cluster's store on a laptop: no torch, ray, sweeper or
trainers. In `sweeper`, only the package `sweeper/ray_backend/` imports ray, so a Ray upgrade
touches one place.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "trainers": {"ray", "sweeper", "results"},
    "results": {"torch", "torchvision", "open_clip", "ray", "sweeper", "trainers"},
}


def imported_roots(path: Path) -> set[str]:
    """Top-level package of every import in `path`, including imports inside functions."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_the_scan_sees_imports_inside_functions(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("import os\n\ndef f():\n    from ray import tune\n    import torch.nn\n")
    assert imported_roots(src) == {"os", "ray", "torch"}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_never_imports_what_it_must_not(package: str) -> None:
    found = modules(package)
    assert found, f"no modules under {package}/"
    bad = {str(p.relative_to(ROOT)): sorted(imported_roots(p) & FORBIDDEN[package]) for p in found}
    assert {k: v for k, v in bad.items() if v} == {}


def test_only_ray_backend_imports_ray_in_sweeper() -> None:
    backend = ROOT / "sweeper" / "ray_backend"
    outside = [
        str(p.relative_to(ROOT))
        for p in modules("sweeper")
        if backend not in p.parents and "ray" in imported_roots(p)
    ]
    assert outside == []
    assert any("ray" in imported_roots(p) for p in backend.rglob("*.py"))
