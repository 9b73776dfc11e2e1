"""The sweeper from Python (a notebook, a script): `sweeper.launch` and `sweeper.export`.

`launch` is the `sweeper launch` command without the shell: the same validation, planning
and driver (`sweeper launch FILE` calls `launch_plan` too). Bad input raises the
`sweeper.errors.SweeperError` subclass the command would report (a `SpecError` listing every
problem of a spec, a `ClusterError`, a `SweepFailed` naming the trials that failed) instead
of exiting.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sweeper.errors import SpecError, SweepFailed
from sweeper.model_export import export

__all__ = ["export", "launch", "launch_plan", "override_strings"]

Overrides = Mapping[str, Any] | Sequence[str] | None


def override_strings(overrides: Overrides) -> list[str]:
    """`{"clean.trial.optim.epochs": 1}` or `["clean.trial.optim.epochs=1"]` as the CLI's
    `dotted.key=value` words (values as JSON, which the YAML reader reads back as given)."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        raise SpecError(
            f"overrides={overrides!r}: pass a list of 'dotted.key=value' strings or a dict "
            "{'dotted.key': value}, not one string"
        )
    if not isinstance(overrides, Mapping):
        return [str(o) for o in overrides]
    words = []
    for key, value in overrides.items():
        try:
            words.append(f"{key}={json.dumps(value, allow_nan=False)}")
        except (TypeError, ValueError) as err:
            raise SpecError(
                f"override {key!r}: {value!r} is not a YAML value ({err}); pass numbers, "
                "strings, booleans, None, lists or dicts of them"
            ) from None
    return words


def launch_plan(
    path: str | Path,
    overrides: Sequence[str],
    *,
    store: str | Path,
    address: str | None = None,
    dashboard_host: str = "127.0.0.1",
    fit_resources: bool = False,
    loggers: Sequence[str] = (),
    ignore_disk: bool = False,
    sweep_id: str | None = None,
) -> tuple[str, int]:
    """Check, plan and run the search space `path`: (sweep id, exit code 0).

    What `sweeper launch FILE` runs once its options are read; a failed trial raises
    `SweepFailed`, an interrupt `SweepInterrupted`.
    """
    from sweeper.disk import check_fits, plan_disk
    from sweeper.driver import launch as run_plan
    from sweeper.driver import new_sweep_id
    from sweeper.plan import plan_file
    from sweeper.rescaled import rescaled_lines

    # Nothing touches the store before the spec has passed every check.
    _, plan = plan_file(path, overrides, loggers)
    if not ignore_disk:
        check_fits(plan_disk(plan), store)  # before anything is written or started
    # No silent override: each value the embedded profile runs differently is said first.
    for line in rescaled_lines(plan, overrides):
        print(line, flush=True)
    sweep_id = sweep_id or new_sweep_id(plan.name)
    code = run_plan(
        plan,
        store=store,
        address=address or os.environ.get("RAY_ADDRESS") or None,
        dashboard_host=dashboard_host,
        spec_path=path,
        sweep_id=sweep_id,
        fit_resources=fit_resources,
    )
    return sweep_id, int(code)


def launch_repeats(
    path: str | Path,
    overrides: Sequence[str],
    seeds: Sequence[int],
    *,
    store: str | Path,
    **options: Any,
) -> tuple[list[str], int]:
    """Run the study once per seed (`seed=S`, after `overrides`), then report the repeats
    together: (sweep ids, exit code). A repeat with failed trials does not stop the others;
    the exit code is then theirs (`SweepFailed`), raised once every repeat has run."""
    from sweeper.driver import new_sweep_id
    from sweeper.spec import read_spec

    spec = read_spec(path, overrides)  # a bad file fails before the first repeat starts
    ids: list[str] = []
    failed: list[tuple[int, SweepFailed]] = []
    for i, seed in enumerate(seeds):
        print(f"repeat {i + 1}/{len(seeds)}: seed={seed}", flush=True)
        sweep_id = new_sweep_id(spec.name)
        ids.append(sweep_id)
        try:
            launch_plan(
                path, [*overrides, f"seed={seed}"], store=store, sweep_id=sweep_id, **options
            )
        except SweepFailed as err:
            print(f"repeat seed={seed}: {err}", flush=True)
            failed.append((seed, err))
    _repeats_summary(store, ids, spec.success_asr)
    if failed:
        seeds_failed = ", ".join(str(s) for s, _ in failed)
        raise SweepFailed(
            f"{len(failed)} of {len(seeds)} repeats had failed trials (seed {seeds_failed}): "
            + "; ".join(str(e) for _, e in failed)
        )
    return ids, 0


def _repeats_summary(store: str | Path, sweeps: Sequence[str], threshold: float) -> None:
    """The repeats' intervals (one line per objective) and their report together."""
    from results.report import write_report
    from results.report_sections import seed_lines
    from results.store import read_epochs

    epochs = read_epochs(store, list(sweeps), missing_ok=True)
    for line in seed_lines(epochs, threshold) if epochs.num_rows else []:
        print(f"across {len(sweeps)} seeds: {line}", flush=True)
    if len(sweeps) > 1:
        report, _ = write_report(store, list(sweeps), threshold=threshold)
        print(f"report (all seeds): {report}", flush=True)


def launch(
    path: str | Path,
    overrides: Overrides = None,
    *,
    store: str | Path = "sweeps",
    address: str | None = None,
    dashboard_host: str = "127.0.0.1",
    fit_resources: bool = False,
    loggers: Sequence[str] = (),
) -> str:
    """Run the search space `path` to its end and return the sweep id.

    `overrides`: `{"clean.trial.optim.epochs": 1}` (or the CLI's `["key=value", ...]`).
    Read its results with `results.load(store, sweep=<the id>)`. Raises a `SweeperError`
    where `sweeper launch` would exit nonzero.
    """
    sweep_id, code = launch_plan(
        path,
        override_strings(overrides),
        store=store,
        address=address,
        dashboard_host=dashboard_host,
        fit_resources=fit_resources,
        loggers=loggers,
    )
    if code != 0:
        raise SweepFailed(
            f"sweep {sweep_id} ended with exit code {code}: sweeper status {sweep_id}"
        )
    return sweep_id
