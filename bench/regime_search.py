"""Search the embedded profile's knobs for a regime where the paper's question can be asked.

    python bench/regime_search.py bench/regime_search.yaml
    python bench/regime_search.py SPACE --only r3 --only r4     # a few regimes of the space
    python bench/regime_search.py SPACE --table-only             # rebuild the table

Issue #13: the demo's tiny world barely implants the backdoor in MMCL+SSL, its eval set is
too small for a 5-point ASR threshold to mean much, and 10 classes put an untriggered
model's errors on the target near 5% anyway. The search space (YAML) lists candidate
regimes, each a set of `sweeper launch` overrides of a base spec (sizes, classes, epochs,
poison rate, image size, learning rates). Each regime is one real `sweeper launch` (niced:
the machine is shared) into one store, so the synthetic data and the pretrains are reused
wherever the knobs match. Its figures come from the store through `results.best.best_clean`,
the report's own "best accuracy at ASR <= 5" and start model per objective.

Every run (failures too) is appended to `<out>.jsonl`; the markdown table `<out>.md` is
rebuilt from all of them, so a search can be resumed regime by regime.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results.best import DEFAULT_THRESHOLD, BestClean, best_clean  # noqa: E402
from results.store import read_epochs  # noqa: E402
from sweeper.errors import SpecError  # noqa: E402
from sweeper.yaml_load import read_yaml_mapping  # noqa: E402

OBJECTIVES = ("mmcl", "mmcl_ssl")
# The paper's shape (issue #13's "done"): MMCL cleans within -10% relative accuracy, and
# MMCL+SSL loses at least 15 points more, or never reaches the threshold; both start models
# carry the backdoor (ASR >= 90%).
MAX_MMCL_DROP = -0.10
MIN_GAP_POINTS = 15.0
MIN_START_ASR = 90.0


@dataclass(frozen=True)
class Regime:
    name: str
    why: str
    overrides: dict[str, Any]


def load_space(path: Path) -> tuple[Path, dict[str, Any], list[Regime]]:
    """(base spec, overrides every regime shares, the regimes) of a search-space YAML."""
    try:
        doc = read_yaml_mapping(path)  # the specs' own reader: 1e-5 is a number
        base = (path.parent / doc["base"]).resolve()
        common = dict(doc.get("common") or {})
        regimes = [
            Regime(str(r["name"]), str(r.get("why", "")), dict(r.get("overrides") or {}))
            for r in doc["regimes"]
        ]
    except (SpecError, KeyError, TypeError) as err:
        sys.exit(f"{path}: not a regime search space ({err}); it needs `base:` and `regimes:` "
                 "(a list of {name, why, overrides}); see bench/regime_search.yaml")  # fmt: skip
    names = [r.name for r in regimes]
    if len(set(names)) != len(names):
        sys.exit(f"{path}: regime names repeat: {names}")
    return base, common, regimes


def override_args(overrides: dict[str, Any]) -> list[str]:
    """dotted.key=value arguments; values as YAML flow (lists stay lists)."""
    dumped = (
        yaml.safe_dump(v, default_flow_style=True, width=10**6).strip() for v in overrides.values()
    )
    return [f"{k}={v.removesuffix('...').strip()}" for k, v in zip(overrides, dumped, strict=True)]


def launch(base: Path, overrides: dict[str, Any], store: Path, log: Path) -> tuple[str, float]:
    """One niced `sweeper launch`; (the new sweep's id, or "" on failure; wall seconds).

    The id is the `sweep: ID` line launch prints, not a diff of the store's folders: two
    regimes may run into one store at once."""
    cmd = ["nice", "-n", "19", sys.executable, "-m", "sweeper", "launch", str(base),
           *override_args(overrides), "--store", str(store)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    with open(log, "w") as out:
        out.write(" ".join(cmd) + "\n")
        out.flush()
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    took = time.monotonic() - start
    ids = [line.split()[1] for line in log.read_text().splitlines()
           if line.startswith("sweep: ") and len(line.split()) == 2]  # fmt: skip
    return (ids[-1] if rc == 0 and ids else ""), took


def figures(store: Path, sweep: str) -> dict[str, dict[str, float | None]]:
    """Per objective: start acc/ASR, best acc at ASR <= 5 and its relative change."""
    out: dict[str, dict[str, float | None]] = {}
    epochs = read_epochs(store, [sweep])
    for b in best_clean(epochs, threshold=DEFAULT_THRESHOLD):
        group = b.group.as_dict()
        if group.get("method") != "cleanclip":
            continue  # the bn_only baseline is not a cleaning
        out[str(group.get("objective"))] = _one(b)
    for r in epochs.to_pylist():
        f = out.get(str(r.get("objective")))
        if f is None or r["stage"] != "clean":
            continue
        if r["method"] == "bn_only" and r["epoch"] == 1:
            f.update(bn_acc=r["clean_acc"], bn_asr=r["asr"])
        if r["epoch"] == 0:
            f["start_floor"] = r.get("asr_untriggered")
    return out


def _one(b: BestClean) -> dict[str, float | None]:
    return {
        "start_acc": b.start.clean_acc if b.start else None,
        "start_asr": b.start.asr if b.start else None,
        "best_acc": b.best.clean_acc if b.best else None,
        "best_asr": b.best.asr if b.best else None,
        "best_lr": (b.best.params.get("lr") if b.best else None),
        "best_epoch": (b.best.epoch if b.best else None),
        "rel": b.relative_change,
    }


def verdict(figs: dict[str, dict[str, float | None]]) -> tuple[float | None, str]:
    """(extra points MMCL+SSL loses over MMCL, or None when it never cleans; the shape)."""
    m, s = figs.get("mmcl"), figs.get("mmcl_ssl")
    if not m or not s:
        return None, "incomplete"
    backdoored = all((f["start_asr"] or 0) >= MIN_START_ASR for f in (m, s))
    if m["best_acc"] is None:
        return None, "MMCL never cleans"
    loss_m = m["start_acc"] - m["best_acc"]  # type: ignore[operator]
    gap = None if s["best_acc"] is None else (s["start_acc"] - s["best_acc"]) - loss_m  # type: ignore[operator]
    ok_m = (m["rel"] or 0) >= MAX_MMCL_DROP
    # "Loses at least 15 points more", read both ways: accuracy points, and points of the
    # relative change (the paper's own terms: about +1% against -17% to -45%). Both must hold.
    rel_gap = None if s["rel"] is None else 100 * ((m["rel"] or 0) - s["rel"])
    ok_gap = gap is None or (gap >= MIN_GAP_POINTS and (rel_gap or 0) >= MIN_GAP_POINTS)
    shape = "yes" if (ok_m and ok_gap and backdoored) else "no"
    if shape == "no":
        why = [w for w, bad in (("start ASR < 90", not backdoored),
                                ("MMCL drop > 10%", not ok_m),
                                ("gap < 15", not ok_gap)) if bad]  # fmt: skip
        shape += " (" + "; ".join(why) + ")"
    return gap, shape


def _f(x: float | None, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _cell(f: dict[str, Any] | None) -> str:
    if not f:
        return "- | - | -"
    best = "never" if f["best_acc"] is None else f"{_f(f['best_acc'])} (lr {f['best_lr']:g})"
    rel = "-" if f["rel"] is None else f"{100 * f['rel']:+.1f}%"
    start = f"{_f(f['start_acc'])} / {_f(f['start_asr'])}"
    if f.get("start_floor") is not None:
        start += f" (floor {_f(f['start_floor'])})"
    if f.get("bn_acc") is not None:
        start += f"; BN-only {_f(f['bn_acc'])} / {_f(f['bn_asr'])}"
    return f"{start} | {best} | {rel}"


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of every recorded run, in the order they ran."""
    head = ("| regime | overrides | MMCL start acc / ASR | MMCL best acc at ASR<=5 | MMCL rel | "
            "MMCL+SSL start acc / ASR | MMCL+SSL best acc at ASR<=5 | MMCL+SSL rel | "
            "extra loss SSL (pts) | shape | wall (min) | load |")  # fmt: skip
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        figs = r.get("figures") or {}
        if r.get("error"):
            cells = f"failed: {r['error']} | | | | | | | failed"
        else:
            gap, shape = verdict(figs)
            gap_s = "never cleans" if gap is None and "never" not in shape and figs else _f(gap)
            cells = f"{_cell(figs.get('mmcl'))} | {_cell(figs.get('mmcl_ssl'))} | {gap_s} | {shape}"
        ov = ", ".join(f"{k.removeprefix('embedded.')}={v}" for k, v in r["overrides"].items())
        lines.append(f"| {r['name']} | {ov} | {cells} | {r['wall_s'] / 60:.1f} | {r['load']} |")
    return "\n".join(lines) + "\n"


def run_one(
    regime: Regime, base: Path, common: dict[str, Any], store: Path, out: Path
) -> dict[str, Any]:
    """Launch one regime and read its figures; a failure is a row too."""
    overrides = {**common, **regime.overrides}
    log = out.with_name(f"{out.name}.{regime.name}.log")
    load = f"{os.getloadavg()[0]:.1f}"
    print(f"[{time.strftime('%H:%M:%S')}] {regime.name}: {' '.join(override_args(overrides))}",
          flush=True)  # fmt: skip
    sweep, took = launch(base, overrides, store, log)
    row: dict[str, Any] = {"name": regime.name, "why": regime.why, "overrides": overrides,
                           "sweep": sweep, "wall_s": took, "load": load}  # fmt: skip
    if not sweep:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        row["error"] = f"launch failed ({tail[0][:120]}); see {log.name}"
    else:
        row["figures"] = figures(store, sweep)
    row["load"] = f"{load}-{os.getloadavg()[0]:.1f}"
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("space", type=Path, help="regimes YAML (bench/regime_search.yaml)")
    p.add_argument("--store", type=Path, default=Path("/tmp/regime_search/store"))
    p.add_argument(
        "--out",
        type=Path,
        default=Path("/tmp/regime_search/regimes"),
        help="writes OUT.jsonl (every run) and OUT.md (the table)",
    )
    p.add_argument("--only", action="append", default=[], help="run only these regimes")
    p.add_argument("--table-only", action="store_true", help="rebuild the table, run nothing")
    p.add_argument(
        "--refresh",
        action="store_true",
        help="re-read each recorded run's figures from the store where its sweep still is",
    )
    args = p.parse_args(argv)
    base, common, regimes = load_space(args.space)
    unknown = set(args.only) - {r.name for r in regimes}
    if unknown:
        sys.exit(f"--only {sorted(unknown)}: not regimes of {args.space}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    jsonl = args.out.with_suffix(".jsonl")
    if not args.table_only:
        for regime in regimes:
            if args.only and regime.name not in args.only:
                continue
            row = run_one(regime, base, common, args.store, args.out)
            with open(jsonl, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(table([row]), flush=True)
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
    if args.refresh:
        for row in rows:
            if row.get("sweep") and (args.store / row["sweep"]).is_dir():
                row["figures"] = figures(args.store, row["sweep"])
        jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = table(rows)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
