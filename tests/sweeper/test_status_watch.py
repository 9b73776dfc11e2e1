"""`sweeper status --watch` on a store written in steps by the driver's own event sink.

Between two refreshes the watch waits; here the wait writes the sweep's next step instead
of sleeping, so every refresh sees one known state and nothing depends on timing.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from results.store import StoreWriter
from sweeper.cli import main
from sweeper.cli.status import watch_sweep
from sweeper.events import StoreEvents, param_columns
from sweeper.plan import StagePlan, SweepPlan, TrialPlan
from sweeper.plan_io import save_plan
from sweeper.watch import CLEAR


def _trial(stage: str, tid: str, epochs: int, **params: Any) -> TrialPlan:
    return TrialPlan(
        trial_id=tid,
        stage=stage,
        entry=stage,
        method="cleanclip" if stage == "clean" else "mmcl",
        objective="mmcl",
        params=params,
        config={"optim": {"epochs": epochs}},
        start="mmcl" if stage == "clean" else None,
    )


def _stage(name: str, *trials: TrialPlan) -> StagePlan:
    return StagePlan(name, trials, {"cpu": 1}, None, None, 1)


PLAN = SweepPlan(
    name="w",
    paper=None,
    profile="embedded",
    spec_text="",
    stages=(
        _stage("pretrain", _trial("pretrain", "pretrain-mmcl", 2)),
        _stage(
            "clean",
            _trial("clean", "clean-mmcl-lr=0.1-r0", 3, lr=0.1),
            _trial("clean", "clean-mmcl-lr=0.2-r0", 3, lr=0.2),
        ),
    ),
    synthetic=None,
    pretrain_cache_keys={},
)


def _payload(t: TrialPlan) -> dict[str, Any]:
    return {
        "trial_id": t.trial_id,
        "stage": t.stage,
        "method": t.method,
        "objective": t.objective,
        "params": t.params,
        "config": t.config,
    }


class Sweep:
    """The driver's side of a sweep, one step at a time, into a real store."""

    def __init__(self, store: Path) -> None:
        self.writer = StoreWriter(store, "w-1", params=param_columns(PLAN))
        save_plan(self.writer.sweep_dir / "plan.json", PLAN)
        self.quiet = io.StringIO()  # the driver's own progress lines: not under test here
        self.pretrain = self._events("pretrain")
        self.clean = self._events("clean")
        self.p, self.a, self.b = (_payload(t) for s in PLAN.stages for t in s.trials)

    def _events(self, stage: str) -> StoreEvents:
        return StoreEvents(self.writer, stage, total=2 if stage == "clean" else 1, out=self.quiet)

    def epoch(self, ev: StoreEvents, p: dict[str, Any], epoch: int, wall: float, **m: Any) -> None:
        record = {"epoch": epoch, "wall_s": wall, "clean_acc": 40.0, "asr": 80.0, **m}
        ev.epoch(p["trial_id"], p, record)

    def steps(self) -> list[Callable[[], None]]:
        def start() -> None:
            self.pretrain.pending([self.p])
            self.pretrain.started("pretrain-mmcl", self.p)
            self.epoch(self.pretrain, self.p, 0, 2.0)
            self.pretrain.flush()

        def pretrain_half() -> None:
            self.epoch(self.pretrain, self.p, 1, 12.0)  # one epoch in 10 s
            self.pretrain.flush()

        def pretrain_done() -> None:
            self.epoch(self.pretrain, self.p, 2, 22.0)
            self.pretrain.finished("pretrain-mmcl", self.p, {"status": "completed"})

        def clean_running() -> None:
            self.clean.pending([self.a, self.b])
            for p in (self.a, self.b):
                self.clean.started(p["trial_id"], p)
                self.epoch(self.clean, p, 0, 1.0)
            self.epoch(self.clean, self.a, 1, 5.0, clean_acc=55.0, asr=3.0)  # 4 s an epoch
            self.clean.flush()

        def clean_done() -> None:
            for p in (self.a, self.b):
                self.clean.finished(p["trial_id"], p, {"status": "completed"})

        return [start, pretrain_half, pretrain_done, clean_running, clean_done]


def _blocks(text: str) -> list[str]:
    return text.split("\n\n")


def test_watch_follows_the_sweep_and_stops_when_it_is_finished(tmp_path: Path) -> None:
    sweep = Sweep(tmp_path)
    steps = iter(sweep.steps())
    waits: list[float] = []

    def next_step(seconds: float) -> None:
        waits.append(seconds)
        next(steps)()  # StopIteration here: the watch did not stop at the finished sweep

    out = io.StringIO()
    code = watch_sweep(tmp_path, "w-1", interval=7.0, out=out, sleep=next_step)
    assert code == 0 and waits == [7.0] * 5
    blocks = _blocks(out.getvalue().rstrip("\n"))
    assert len(blocks) == 6, out.getvalue()
    assert CLEAR not in out.getvalue()  # not a terminal: blocks appended
    # Before any row: the planned stages, nothing running.
    assert "  pretrain: 0/1 done, 0 running, 0 failed\n  clean: 0/2 done" in blocks[0]
    assert "pretrain: 0/1 done, 1 running, 0 failed | mmcl epoch 0/2 | ETA estimating" in blocks[1]
    # One epoch took 10 s, one is left.
    assert "| mmcl epoch 1/2 | ETA ~10s" in blocks[2]
    assert "pretrain: 1/1 done, 0 running" in blocks[3] and "finished" not in blocks[3]
    # Clean: 4 s an epoch (a's epoch 1), a has 2 left, b 3, two side by side: 10 s.
    assert (
        "clean: 0/2 done, 2 running, 0 failed | mmcl-lr=0.1-r0 epoch 1/3, "
        "mmcl-lr=0.2-r0 epoch 0/3 | ETA ~10s"
    ) in blocks[4]
    # The best candidate by results.best's rule: epoch 1 of trial a (ASR 3 <= 5).
    assert "best clean_acc at ASR<=5%: 55.00 (clean-mmcl-lr=0.1-r0, epoch 1, asr 3.00)" in blocks[4]
    assert "clean: 2/2 done, 0 running, 0 failed" in blocks[5]
    assert blocks[5].endswith("finished: nothing more will be written to this sweep")


def test_watch_on_a_terminal_redraws_in_place_and_ctrl_c_exits_0(tmp_path: Path) -> None:
    Sweep(tmp_path)

    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt

    out = io.StringIO()
    assert watch_sweep(tmp_path, "w-1", interval=1, out=out, tty=True, sleep=ctrl_c) == 0
    assert out.getvalue().startswith(CLEAR) and out.getvalue().count(CLEAR) == 1


def test_cli_watch_count_and_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = Sweep(tmp_path)
    sweep.steps()[0]()  # running: the watch would go on
    args = ["status", "w-1", "--store", str(tmp_path), "--watch", "--interval", "0"]
    assert main([*args, "--count", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("sweep w-1: 1 epoch rows") == 2 and "mmcl epoch 0/2" in out
    assert main([*args, "--count", "0"]) == 2
    assert "--count >= 1" in capsys.readouterr().err
