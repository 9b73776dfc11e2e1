"""Every shipped search space: it validates, opens with its command, and its grid is the paper's.

The published values below are Appendix D of Verma et al. (TMLR 2025) as the project's
PAPER_NOTES record them, value for value and with the published repeats. A new file in
search_spaces/ is picked up by the parametrised tests automatically.
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from sweeper.plan import SweepPlan, load_spec, plan_sweep

ROOT = Path(__file__).resolve().parents[2] / "search_spaces"
SPACES = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.yaml"))

PUBLISHED_LR = {
    "D.1": [
        1e-5,
        4e-5,
        8e-5,
        1e-4,
        1.5e-4,
        2e-4,
        2.5e-4,
        3e-4,
        3.5e-4,
        4e-4,
        8e-4,
        1e-3,
        4e-3,
    ],
    "D.3": [
        1e-9,
        5e-9,
        1e-8,
        5e-8,
        1e-7,
        3e-7,
        7e-7,
        1e-6,
        3e-6,
        7e-6,
        1e-5,
        3e-5,
    ],
    "D.4": [
        1e-9,
        5e-9,
        1e-8,
        5e-8,
        1e-7,
        3e-7,
        7e-7,
        1e-6,
        3e-6,
        7e-6,
        1e-5,
        4e-5,
        5e-5,
        6e-5,
        7e-5,
        9e-5,
        1e-4,
        3e-4,
        4e-4,
        5e-4,
        6e-4,
        1e-3,
        3e-3,
    ],
    "D.5": [
        5e-05,
        4.9e-05,
        4.8e-05,
        4.7e-05,
        4.6e-05,
        4.5e-05,
        4.4e-05,
        4.3e-05,
        4.25e-05,
        4.2e-05,
        4.1e-05,
        4e-05,
        3.9e-05,
        3.8e-05,
        3.75e-05,
        3.7e-05,
        3.6e-05,
        3.5e-05,
        3.4e-05,
        3.3e-05,
        3.2e-05,
        3.1e-05,
        3e-05,
        2.9e-05,
        2.8e-05,
        2.7e-05,
        2.6e-05,
        2.5e-05,
        2.4e-05,
        2.3e-05,
        2.2e-05,
        2.1e-05,
        2e-05,
        1.9e-05,
        1.8e-05,
        1.7e-05,
        1.6e-05,
        1.5e-05,
        1.4e-05,
        1.3e-05,
        1.2e-05,
        1.1e-05,
        1e-05,
        9e-06,
        8e-06,
        7e-06,
        6e-06,
        5e-06,
        4.9e-06,
        4.75e-06,
        4.5e-06,
        4.25e-06,
        4e-06,
        3.75e-06,
        3.5e-06,
        3.25e-06,
        3e-06,
        2.75e-06,
        2.5e-06,
        2.25e-06,
        2e-06,
        1.75e-06,
        1.5e-06,
        1.25e-06,
        1e-06,
        5e-07,
        1e-07,
        5e-08,
        1e-08,
    ],
    "D.6": [
        0.005,
        0.001,
        0.0005,
        0.0001,
        5e-05,
        5e-05,
        4.9e-05,
        4.8e-05,
        4.75e-05,
        4.7e-05,
        4.6e-05,
        4.5e-05,
        4.5e-05,
        4.4e-05,
        4.3e-05,
        4.25e-05,
        4.2e-05,
        4.1e-05,
        4e-05,
        4e-05,
        3.9e-05,
        3.8e-05,
        3.75e-05,
        3.7e-05,
        3.6e-05,
        3.5e-05,
        3.5e-05,
        3.4e-05,
        3.3e-05,
        3.25e-05,
        3.2e-05,
        3.1e-05,
        3e-05,
        3e-05,
        2.9e-05,
        2.8e-05,
        2.75e-05,
        2.7e-05,
        2.6e-05,
        2.5e-05,
        2.5e-05,
        2.4e-05,
        2.3e-05,
        2.25e-05,
        2.2e-05,
        2.1e-05,
        2e-05,
        2e-05,
        1.9e-05,
        1.8e-05,
        1.75e-05,
        1.7e-05,
        1.6e-05,
        1.5e-05,
        1.5e-05,
        1.4e-05,
        1.4e-05,
        1.3e-05,
        1.3e-05,
        1.2e-05,
        1.2e-05,
        1.1e-05,
        1.1e-05,
        1e-05,
        1e-05,
        9e-06,
        9e-06,
        8e-06,
        8e-06,
        7e-06,
        7e-06,
        6e-06,
        6e-06,
        5e-06,
        5e-06,
        1e-06,
        1e-06,
        5e-07,
        5e-07,
        1e-07,
        1e-07,
        5e-08,
        5e-08,
        1e-08,
        1e-08,
    ],
    "D.7": [
        5e-05,
        4.75e-05,
        4.25e-05,
        4e-05,
        3.8e-05,
        3.75e-05,
        3.7e-05,
        3.6e-05,
        3.5e-05,
        3.4e-05,
        3.3e-05,
        3.2e-05,
        3.1e-05,
        3e-05,
        2.9e-05,
        2.8e-05,
        2.7e-05,
        2.6e-05,
        2.5e-05,
        2.4e-05,
        2.3e-05,
        2.2e-05,
        2.1e-05,
        2e-05,
        1.9e-05,
        1.8e-05,
        1.7e-05,
        1.6e-05,
        1.5e-05,
        1.4e-05,
        1.3e-05,
        1.2e-05,
        1.1e-05,
        1e-05,
        9e-06,
        8e-06,
        7e-06,
        6e-06,
        5e-06,
        1e-06,
        5e-07,
        1e-07,
        5e-08,
        1e-08,
    ],
    "D.8": [
        0.007,
        0.006,
        0.005,
        0.004,
        0.003,
        0.002,
        0.001,
        0.0009,
        0.0008,
        0.0007,
        0.0006,
        0.0005,
        0.0004,
        0.0003,
        0.0002,
        0.00018,
        0.00017,
        0.00016,
        0.00014,
        0.00013,
        0.00012,
        0.00011,
        0.0001,
        9e-05,
        8e-05,
        7e-05,
        6e-05,
        5e-05,
        4.75e-05,
        4.25e-05,
        4e-05,
        3.8e-05,
        3.75e-05,
        3.7e-05,
        3.6e-05,
        3.5e-05,
        3.4e-05,
        3.3e-05,
        3.2e-05,
        3.1e-05,
        3e-05,
        2.9e-05,
        2.8e-05,
        2.7e-05,
        2.6e-05,
        2.5e-05,
        2.4e-05,
        2.3e-05,
        2.2e-05,
        2.1e-05,
        2e-05,
        1.9e-05,
        1.8e-05,
        1.7e-05,
        1.6e-05,
        1.5e-05,
        1.4e-05,
        1.3e-05,
        1.2e-05,
        1.1e-05,
        1e-05,
        9e-06,
        8e-06,
        7e-06,
        6e-06,
        5e-06,
        1e-06,
        5e-07,
        1e-07,
        5e-08,
        1e-08,
    ],
    "D.9": [
        1e-7,
        3e-7,
        7e-7,
        1e-6,
        3e-6,
        7e-6,
        1e-5,
        3e-5,
    ],
    "D.10": [
        1e-8,
        5e-8,
        1e-7,
        3e-7,
        5e-7,
        7e-7,
        1e-6,
        3e-6,
        5e-6,
        7e-6,
        1e-5,
        3e-5,
        5e-5,
        1e-4,
        3e-4,
        5e-4,
        7e-4,
        1e-4,
        3e-4,
    ],
    "D.11": [
        5e-6,
        1e-5,
        5e-5,
        1e-4,
        2e-4,
        3e-4,
        4e-4,
        5e-4,
        1e-3,
    ],
    "D.12": [
        3e-6,
        7e-6,
        1e-5,
        3e-5,
        1e-4,
        5e-4,
        1e-3,
        5e-3,
    ],
    "D.13": [
        1e-5,
        2e-5,
        4e-5,
        5e-5,
        7e-5,
        9e-5,
        1e-4,
        2e-4,
        1e-3,
    ],
    "D.14": [
        1e-9,
        5e-9,
        1e-8,
        5e-8,
        1e-7,
        3e-7,
        7e-7,
        1e-6,
        3e-6,
        7e-6,
        1e-5,
        3e-5,
        1e-4,
        1e-3,
    ],
    "D.15": [
        1e-5,
        2e-5,
        3e-5,
        4e-5,
        5e-5,
        6e-5,
        7e-5,
        9e-5,
        1e-4,
        2e-4,
        3e-4,
        4e-4,
        5e-4,
    ],
    "D.16": [
        5e-5,
        1e-4,
        5e-4,
        1e-3,
    ],
}
PUBLISHED_LR["D.2"] = PUBLISHED_LR["D.1"]  # "same as D.1"
D11_CLUSTER_WEIGHT = [0.1, 0.5, 1, 2, 5, 10, 20, 50]
D12_L2_WEIGHT = [0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]
D13_SHRINK = [
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.92,
    0.93,
    0.95,
    0.96,
    0.97,
    0.98,
    0.99,
    1,
]
D13_SIGMA = [1e-5, 1e-4, 1e-3, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.4, 0.8, 1, 2, 3, 4]
D16_SSL_WEIGHT = [2, 4, 6, 8]

# file -> (paper id, start models used, trials per stage). D.9 8x2, D.10 19x2 (repeats kept),
# D.11 9x8x2, D.12 8x9x3, D.13 17x15 screened then 9, D.15 13x2, D.16 4x4.
EXPECTED: dict[str, tuple[str, list[str], dict[str, int]]] = {
    "d01_cc3m_mmcl.yaml": ("D.1", ["mmcl"], {"pretrain": 1, "clean": 13}),
    "d02_cc3m_mmcl_ssl.yaml": ("D.2", ["mmcl_ssl"], {"pretrain": 2, "clean": 13}),
    "d03_cc6m_mmcl.yaml": ("D.3", ["mmcl"], {"pretrain": 1, "clean": 12}),
    "d04_cc6m_mmcl_ssl.yaml": ("D.4", ["mmcl_ssl"], {"pretrain": 2, "clean": 23}),
    "d05_finetune_mmcl.yaml": ("D.5", ["mmcl"], {"pretrain": 1, "clean": 69}),
    "d06_finetune_mmcl_ssl.yaml": ("D.6", ["mmcl_ssl"], {"pretrain": 2, "clean": 85}),
    "d07_label_consistent_mmcl.yaml": ("D.7", ["mmcl"], {"pretrain": 1, "clean": 44}),
    "d08_label_consistent_mmcl_ssl.yaml": ("D.8", ["mmcl_ssl"], {"pretrain": 2, "clean": 71}),
    "d09_cc3m_poisoned_cleaning_set.yaml": ("D.9", ["mmcl"], {"pretrain": 1, "clean": 8 * 2}),
    "d10_cc6m_poisoned_cleaning_set.yaml": ("D.10", ["mmcl"], {"pretrain": 1, "clean": 19 * 2}),
    "d11_deep_clustering.yaml": ("D.11", ["mmcl_ssl"], {"pretrain": 2, "clean": 9 * 8 * 2}),
    "d12_heavy_regularisation.yaml": ("D.12", ["mmcl_ssl"], {"pretrain": 2, "clean": 8 * 9 * 3}),
    "shrink_perturb.yaml": ("D.13", ["mmcl_ssl"], {"pretrain": 2, "screen": 17 * 15, "clean": 9}),
    "d14_cleaning_set_200k.yaml": ("D.14", ["mmcl_ssl"], {"pretrain": 2, "clean": 14}),
    "d15_more_epochs.yaml": ("D.15", ["mmcl_ssl"], {"pretrain": 2, "clean": 13 * 2}),
    "d16_ssl_weight.yaml": ("D.16", ["mmcl_ssl"], {"pretrain": 2, "clean": 4 * 4}),
    "per_loss_cleaning.yaml": (
        "Fig. 2, 10",
        ["mmcl", "mmcl_ssl"],
        {"pretrain": 2, "clean": 3 * 12 * 2},
    ),
    "optuna_cc6m_mmcl_ssl.yaml": ("D.4", ["mmcl_ssl"], {"pretrain": 2, "clean": 40}),
    "demo.yaml": ("D.1/D.2 (miniature)", ["mmcl", "mmcl_ssl"], {"pretrain": 2, "clean": 3 * 2}),
    "pretrain/cc3m_badnet.yaml": ("Fig. 17-18", [], {"pretrain": 2}),
    "pretrain/cc6m_badnet.yaml": ("Fig. 17-18", [], {"pretrain": 2}),
    "pretrain/cc6m_label_consistent.yaml": ("Fig. 17-18", [], {"pretrain": 2}),
    "pretrain/openai_finetune_badnet.yaml": ("Fig. 17-18", [], {"pretrain": 2}),
}


@cache  # plans are frozen; several tests read the same one
def plan_of(rel: str, overrides: tuple[str, ...] = ()) -> SweepPlan:
    path = ROOT / rel
    return plan_sweep(load_spec(path, overrides), spec_path=path)


def test_every_shipped_file_is_listed_here() -> None:
    assert set(SPACES) == set(EXPECTED)


def test_one_file_per_appendix_experiment() -> None:
    papers = {
        paper for name, (paper, _, _) in EXPECTED.items() if not name.startswith(("optuna", "demo"))
    }
    assert {f"D.{i}" for i in range(1, 17)} <= papers


@pytest.mark.parametrize("rel", SPACES)
def test_validates_and_counts(rel: str) -> None:
    plan = plan_of(rel)
    paper, used, counts = EXPECTED[rel]
    assert plan.paper == paper
    assert {s.name: s.n_trials for s in plan.stages} == counts
    starts = {t.start for s in plan.stages if s.name != "pretrain" for t in s.trials}
    starts |= {s.search.start for s in plan.stages if s.search is not None}
    assert sorted(starts) == used


@pytest.mark.parametrize("rel", SPACES)
def test_opens_with_its_command(rel: str) -> None:
    first = (ROOT / rel).read_text().splitlines()[0]
    assert first == f"# sweeper launch search_spaces/{rel}"


@pytest.mark.parametrize("rel", SPACES)
def test_real_profile_plans_the_same_grid(rel: str) -> None:
    extra = ("real.pretrain_data=/data/demo/{0..9}.tar",) if rel == "demo.yaml" else ()
    real = plan_of(rel, ("profile=real", *extra))
    embedded = plan_of(rel)
    assert real.synthetic is None and embedded.synthetic is not None
    ids = lambda p: [t.trial_id for s in p.stages for t in s.trials]  # noqa: E731
    assert ids(real) == ids(embedded)
    for stage in real.stages:
        for trial in stage.trials:
            assert not str(trial.config["data"]["train"]).startswith("@")
            # OpenAI's weights need QuickGELU: the finetune spaces name RN50-quickgelu.
            assert trial.config["model"]["name"] in ("RN50", "RN50-quickgelu")


@pytest.mark.parametrize("rel", SPACES)
def test_trial_ids_unique_and_repeats_get_own_seeds(rel: str) -> None:
    plan = plan_of(rel)
    trials = [t for s in plan.stages for t in s.trials]
    assert len({t.trial_id for t in trials}) == len(trials)
    # A repeated grid point (same start, method and values) runs again with another seed.
    same_point = Counter(
        (t.stage, t.start, t.method, repr(t.params), t.config["seed"])
        for t in trials
        if t.stage != "pretrain"
    )
    assert max(same_point.values(), default=1) == 1


def grid_values(rel: str, stage: str, name: str) -> list[float]:
    spec = load_spec(ROOT / rel)
    section = spec.screen if stage == "screen" else spec.clean
    assert section is not None and section.grid is not None
    return section.grid[name]


@pytest.mark.parametrize(
    "rel",
    [
        r
        for r, (paper, _, _) in EXPECTED.items()
        if paper in PUBLISHED_LR and r != "optuna_cc6m_mmcl_ssl.yaml" and r != "demo.yaml"
    ],
)
def test_learning_rates_as_published(rel: str) -> None:
    paper = EXPECTED[rel][0]
    assert grid_values(rel, "clean", "lr") == PUBLISHED_LR[paper]


def test_repeats_kept_as_published() -> None:
    d6 = [
        t
        for s in plan_of("d06_finetune_mmcl_ssl.yaml").stages
        if s.name == "clean"
        for t in s.trials
    ]
    lrs = Counter(t.params["lr"] for t in d6)
    assert len(d6) == 85 and lrs[5e-05] == 2 and lrs[1e-08] == 2 and lrs[0.005] == 1
    twins = [t for t in d6 if t.params["lr"] == 5e-05]
    assert [(t.trial_id, t.config["seed"]) for t in twins] == [
        ("clean-mmcl_ssl-lr=5e-05-r0", 0),
        ("clean-mmcl_ssl-lr=5e-05-r1", 1),
    ]
    d10 = [
        t
        for s in plan_of("d10_cc6m_poisoned_cleaning_set.yaml").stages
        if s.name == "clean"
        for t in s.trials
    ]
    again = [t for t in d10 if t.params == {"clean_poisons": 10, "lr": 3e-4}]
    assert sorted(t.config["seed"] for t in again) == [0, 1]


def test_other_published_dimensions() -> None:
    assert grid_values("d11_deep_clustering.yaml", "clean", "cluster_weight") == D11_CLUSTER_WEIGHT
    assert grid_values("d11_deep_clustering.yaml", "clean", "cluster_source") == [
        "kmeans",
        "teacher",
    ]
    assert grid_values("d12_heavy_regularisation.yaml", "clean", "l2_weight") == D12_L2_WEIGHT
    assert grid_values("d12_heavy_regularisation.yaml", "clean", "base_loss") == [
        "mmcl",
        "ssl",
        "mmcl_ssl",
    ]
    assert grid_values("shrink_perturb.yaml", "screen", "shrink") == D13_SHRINK
    assert grid_values("shrink_perturb.yaml", "screen", "perturb_sigma") == D13_SIGMA
    assert grid_values("d16_ssl_weight.yaml", "clean", "ssl_weight") == D16_SSL_WEIGHT
    assert grid_values("d15_more_epochs.yaml", "clean", "epochs") == [50, 100]
    for rel in ("d09_cc3m_poisoned_cleaning_set.yaml", "d10_cc6m_poisoned_cleaning_set.yaml"):
        assert grid_values(rel, "clean", "clean_poisons") == [5, 10]


def clean_configs(rel: str) -> list[dict]:
    plan = plan_of(rel, ("profile=real",))
    return [t.config for s in plan.stages if s.name == "clean" for t in s.trials]


@pytest.mark.parametrize(
    "rel",
    [
        r
        for r, (_, used, c) in EXPECTED.items()
        if "clean" in c and r not in ("demo.yaml", "optuna_cc6m_mmcl_ssl.yaml")
    ],
)
def test_cleaning_defaults_as_published(rel: str) -> None:
    epochs = {
        "d11_deep_clustering.yaml": {10},
        "d12_heavy_regularisation.yaml": {10},
        "d15_more_epochs.yaml": {50, 100},
    }
    configs = clean_configs(rel)
    assert {c["optim"]["epochs"] for c in configs} == epochs.get(rel, {20})
    assert {(c["optim"]["warmup_steps"], c["data"]["batch_size"]) for c in configs} == {(50, 128)}
    if rel not in (
        "d12_heavy_regularisation.yaml",
        "per_loss_cleaning.yaml",
        "d16_ssl_weight.yaml",
    ):
        assert {(c["loss"]["mmcl_weight"], c["loss"]["ssl_weight"]) for c in configs} == {
            (1.0, 1.0)
        }


def test_experiment_specific_configs() -> None:
    d12 = clean_configs("d12_heavy_regularisation.yaml")
    assert {(c["loss"]["mmcl_weight"], c["loss"]["ssl_weight"]) for c in d12} == {
        (1.0, 0.0),
        (0.0, 1.0),
        (1.0, 1.0),
    }
    assert {c["loss"]["l2_weight"] for c in d12} == {float(x) for x in D12_L2_WEIGHT}
    d11 = clean_configs("d11_deep_clustering.yaml")
    teacher = [c for c in d11 if c["loss"]["cluster_source"] == "teacher"]
    assert len(teacher) == 72 and all(c["loss"]["teacher_checkpoint"] for c in teacher)
    d9 = clean_configs("d09_cc3m_poisoned_cleaning_set.yaml")
    assert {(c["poison"]["kind"], c["poison"]["amount"]) for c in d9} == {
        ("badnet", 5.0),
        ("badnet", 10.0),
    }
    d14 = plan_of("d14_cleaning_set_200k.yaml")
    d14_clean = [t.config for s in d14.stages if s.name == "clean" for t in s.trials]
    assert {c["data"]["max_samples"] for c in d14_clean} == {1000}  # twice the embedded default
    assert {c["data"]["train"] for c in clean_configs("d14_cleaning_set_200k.yaml")} == {
        "/data/cc6m/clean_200k.csv"
    }
    per_loss = [
        t for s in plan_of("per_loss_cleaning.yaml").stages if s.name == "clean" for t in s.trials
    ]
    assert Counter(t.method for t in per_loss) == {"mmcl": 24, "ssl": 24, "cleanclip": 24}


@pytest.mark.parametrize(
    ("rel", "kind", "amount", "lr", "from_checkpoint"),
    [
        ("pretrain/cc3m_badnet.yaml", "badnet", 1500, 1e-3, False),
        ("pretrain/cc6m_badnet.yaml", "badnet", 3000, 1e-3, False),
        ("pretrain/cc6m_label_consistent.yaml", "label_consistent", 3000, 1e-3, False),
        ("pretrain/openai_finetune_badnet.yaml", "badnet", 1500, 5e-7, True),
    ],
)
def test_pretraining_as_published(
    rel: str, kind: str, amount: int, lr: float, from_checkpoint: bool
) -> None:
    (stage,) = plan_of(rel, ("profile=real",)).stages
    by_job = {t.trial_id: t.config for t in stage.trials}
    assert set(by_job) == {"pretrain-mmcl", "pretrain-mmcl_ssl"}
    for job, batch, ssl in (("pretrain-mmcl", 256, 0.0), ("pretrain-mmcl_ssl", 128, 1.0)):
        c = by_job[job]
        assert (c["poison"]["kind"], c["poison"]["amount"], c["optim"]["lr"]) == (kind, amount, lr)
        assert (c["optim"]["epochs"], c["optim"]["warmup_steps"], c["optim"]["weight_decay"]) == (
            64,
            10000,
            0.1,
        )
        assert (c["data"]["batch_size"], c["loss"]["ssl_weight"], c["save"]) == (
            batch,
            ssl,
            "every",
        )
        assert bool(c["model"]["checkpoint"]) is from_checkpoint


def test_cleaning_files_share_the_cached_pretraining() -> None:
    keys = plan_of("pretrain/cc6m_badnet.yaml").pretrain_cache_keys
    for rel in (
        "d03_cc6m_mmcl.yaml",
        "d04_cc6m_mmcl_ssl.yaml",
        "shrink_perturb.yaml",
        "d14_cleaning_set_200k.yaml",
    ):
        planned = plan_of(rel).pretrain_cache_keys
        assert planned == {job: keys[job] for job in planned}
    # On real data CC3M and CC6M are different runs; on the synthetic set (same poison
    # fraction, same pairs) they are the same config and share one cache entry.
    real = ("profile=real",)
    cc3m = plan_of("pretrain/cc3m_badnet.yaml", real).pretrain_cache_keys
    assert cc3m["mmcl"] != plan_of("pretrain/cc6m_badnet.yaml", real).pretrain_cache_keys["mmcl"]
    assert plan_of("pretrain/cc3m_badnet.yaml").pretrain_cache_keys == keys


def test_demo_is_small() -> None:
    plan = plan_of("demo.yaml")
    configs = [t.config for s in plan.stages for t in s.trials]
    # 2 pre-training jobs x 8 epochs, 3 learning rates x 2 objectives x 5 epochs, and the two
    # one-epoch BN-only baselines: regime r2 of docs/regime_search.md, about 6 minutes.
    assert sum(c["optim"]["epochs"] for c in configs) <= 8 * 2 + 5 * 6 + 2
    assert plan.report and plan.synthetic is not None and plan.synthetic["n_train"] <= 3000
