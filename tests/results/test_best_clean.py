"""Best cleaned model (the paper's Tables 1 and 2) on a hand-made store."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from results.best import best_clean
from results.errors import AnalysisError, SchemaError
from results.store import read_epochs, read_epochs_df


def by_objective(results):
    return {r.group.as_dict()["objective"]: r for r in results}


def test_best_and_relative_change(paper_store) -> None:
    got = by_objective(best_clean(read_epochs(paper_store)))
    mmcl, ssl = got["mmcl"], got["mmcl_ssl"]
    assert mmcl.best is not None
    assert (mmcl.best.trial_id, mmcl.best.epoch) == ("mmcl-b", 2)
    assert (mmcl.best.clean_acc, mmcl.best.asr) == (24.04, 4.0)
    assert mmcl.best.params == {"lr": 3e-5}
    assert mmcl.best.checkpoint == "/ckpt/mmcl-b/epoch_2.pt"
    assert mmcl.best.sweep_id == "cc6m" and mmcl.best.method == "cleanclip"
    assert mmcl.start is not None and mmcl.start.trial_id == "mmcl-b"
    assert (mmcl.start.clean_acc, mmcl.start.asr) == (23.76, 99.98)
    assert mmcl.relative_change == pytest.approx((24.04 - 23.76) / 23.76)  # the paper's +1%
    assert ssl.best is not None and (ssl.best.trial_id, ssl.best.epoch) == ("ssl-a", 3)
    assert ssl.relative_change == pytest.approx((13.05 - 23.86) / 23.86)  # the paper's -45%
    assert (mmcl.n_trials, mmcl.n_candidates) == (2, 6)


def test_no_candidate_under_threshold_is_not_a_number(paper_store) -> None:
    got = by_objective(best_clean(read_epochs(paper_store), threshold=4.5))
    assert got["mmcl_ssl"].best is None
    assert got["mmcl_ssl"].relative_change is None
    assert not got["mmcl_ssl"].found
    # The start is still known: the mean of the group's epoch-0 rows.
    assert got["mmcl_ssl"].start.clean_acc == 23.86 and got["mmcl_ssl"].start.n_rows == 2
    assert got["mmcl"].best.clean_acc == 24.04
    # Threshold 3: only mmcl-b epoch 3 qualifies.
    assert by_objective(best_clean(read_epochs(paper_store), threshold=3))["mmcl"].best.epoch == 3


def test_ties_epoch_zero_and_pandas(make_trajectory) -> None:
    rows = make_trajectory("b", [10, 12, 12], [0, 4, 2]) + make_trajectory("a", [10, 12], [0, 2])
    for r in rows:
        r["sweep_id"] = "s"
    df = pa.Table.from_pylist(rows).to_pandas()
    (res,) = best_clean(df)
    # Equal accuracy: lower ASR; then the earlier epoch; then trial "a" before "b".
    assert (res.best.trial_id, res.best.epoch, res.best.asr) == ("a", 1, 2.0)
    assert res.start.trial_id == "a"
    (none,) = best_clean(df, threshold=1)
    assert none.best is None  # epoch 0 has ASR 0 but is the starting model, not a candidate
    clean_start = table_of(make_trajectory("z", [50.0, 12.0], [0.0, 2.0]))
    (res,) = best_clean(clean_start)
    assert (res.best.epoch, res.best.clean_acc, res.relative_change) == (1, 12.0, -0.76)


def table_of(rows):
    for r in rows:
        r["sweep_id"] = "s"
    return pa.Table.from_pylist(rows)


def test_grouping_by_a_swept_value(paper_store) -> None:
    got = best_clean(read_epochs_df(paper_store), by=("objective", "p_lr"))
    keyed = {(r.group.values[0], r.group.values[1]): r for r in got}
    assert set(keyed) == {("mmcl", 1e-5), ("mmcl", 3e-5), ("mmcl_ssl", 1e-5), ("mmcl_ssl", 3e-5)}
    assert keyed[("mmcl", 1e-5)].best.clean_acc == 21.0
    assert keyed[("mmcl_ssl", 3e-5)].best is None


def test_bad_requests(paper_store) -> None:
    t = read_epochs(paper_store)
    with pytest.raises(AnalysisError, match=r"cannot group by p_nope.*p_lr"):
        best_clean(t, by=("p_nope",))
    with pytest.raises(AnalysisError, match="threshold"):
        best_clean(t, threshold=-1)
    with pytest.raises(SchemaError, match="lack column.*asr"):
        best_clean(t.drop_columns(["asr"]))
    with pytest.raises(AnalysisError, match="pyarrow Table or pandas DataFrame"):
        best_clean([1, 2, 3])


def test_shrink_perturb_relative_change_is_from_the_poisoned_origin(
    make_trajectory: Any,
) -> None:
    import pyarrow as pa

    from results.best import best_clean

    # The screen evaluated the poisoned model unperturbed (50 / 99) and picked a perturbed
    # one (30 / 10) that cleaning starts from; cleaning reaches 40 at ASR 2.
    origin = make_trajectory("screen-mmcl-origin", [50.0], [99.0], stage="screen")
    picked = make_trajectory("screen-mmcl-x", [30.0], [10.0], stage="screen")
    clean = make_trajectory("clean-mmcl-lr", [30.0, 35.0, 40.0], [10.0, 6.0, 2.0], shrink=0.4)
    # Clean rows first: from_pylist takes its columns from the first row.
    rows = [dict(r, sweep_id="s") for r in clean + origin + picked]
    (b,) = best_clean(pa.Table.from_pylist(rows))
    assert b.best is not None and b.best.clean_acc == 40.0
    assert b.start is not None and b.start.clean_acc == 30.0  # the perturbed start
    assert b.origin is not None and (b.origin.clean_acc, b.origin.asr) == (50.0, 99.0)
    assert b.relative_change == pytest.approx((40.0 - 50.0) / 50.0)  # not (40 - 30) / 30


def test_without_shrink_perturb_there_is_no_origin(make_trajectory: Any) -> None:
    import pyarrow as pa

    from results.best import best_clean

    rows = [dict(r, sweep_id="s") for r in make_trajectory("clean-a", [30.0, 33.0], [90.0, 1.0])]
    (b,) = best_clean(pa.Table.from_pylist(rows))
    assert b.origin is None and b.relative_change == pytest.approx(0.1)
