"""A resumed Optuna stage continues its search instead of starting it over.

A fresh `OptunaSearch` with the stage's seed samples the very points the interrupted run
sampled first, so `sweeper resume` would spend the rest of the budget re-running finished
trials. The resumed searcher instead starts from an Optuna study (in memory) that already
holds every finished trial of the stage, told as the live run told them: a completed,
diverged or stopped trial with its objective (`sweeper.trialrun.best_point`: its best
cleaning epoch, never epoch 0), a failed one as FAIL. Its TPE sampler is seeded with the
stage's seed plus the number of finished trials: the same resume samples the same points,
and its random start-up draws are not the first run's again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

METRICS = ["objective_acc", "objective_asr"]
MODES = ["max", "min"]
# The Tune config key the sampled values sit under (`{"trial": ..., "params": space}`):
# OptunaSearch flattens it to "params/<name>".
PARAMS_KEY = "params"
_STUDY = "optuna"  # OptunaSearch's own name for an in-memory study

Finished = tuple[Mapping[str, Any], "tuple[float, float] | None"]


def searcher(
    space: Mapping[str, Any], seed: int, finished: Sequence[Finished] = ()
) -> OptunaSearch:
    """The stage's searcher; `finished`: (params by short name, (acc, asr) or None when the
    trial failed) for each trial the stage finished before it was resumed."""
    if not finished:
        return OptunaSearch(metric=METRICS, mode=MODES, seed=seed)
    distributions = OptunaSearch.convert_search_space({PARAMS_KEY: dict(space)})
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(
        storage=storage, study_name=_STUDY, directions=["maximize", "minimize"]
    )
    for params, point in finished:
        flat = {f"{PARAMS_KEY}/{k}": v for k, v in params.items()}
        if point is None:
            trial = optuna.trial.create_trial(
                state=optuna.trial.TrialState.FAIL, params=flat, distributions=distributions
            )
        else:
            trial = optuna.trial.create_trial(
                state=optuna.trial.TrialState.COMPLETE,
                values=[float(point[0]), float(point[1])],
                params=flat,
                distributions=distributions,
            )
        study.add_trial(trial)
    return OptunaSearch(
        metric=METRICS,
        mode=MODES,
        sampler=optuna.samplers.TPESampler(seed=seed + len(finished)),
        storage=storage,
        study_name=_STUDY,
    )
