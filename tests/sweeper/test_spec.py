"""The search-space spec and its plan: parsing, every problem at once, and the trials it expands to."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from sweeper.errors import SpecError
from sweeper.overrides import apply_overrides, parse_override, parse_yaml
from sweeper.plan import (
    SYNTHETIC_CLASSNAMES,
    SYNTHETIC_CLEAN,
    SYNTHETIC_EVAL,
    SYNTHETIC_TRAIN,
    SweepPlan,
    apply_params,
    load_spec,
    plan_sweep,
)
from trainers.config import TrialConfig

# A self-contained sweep: an inline pretrain section and a CleanCLIP grid over two start models.
BASE = """\
name: t
paper: D.0
pretrain:
  trial:
    poison: {kind: badnet, amount: 1500}
    optim: {lr: 1e-3, epochs: 64, warmup_steps: 10000}
  jobs:
    mmcl: {objective: mmcl, trial: {data: {batch_size: 256}}}
    mmcl_ssl: {objective: mmcl_ssl, trial: {data: {batch_size: 128}}}
  resources: {gpu: 1, cpu: 8}
clean:
  grid:
    lr: [1e-5, 4e-5, 1e-5]
  trial:
    optim: {epochs: 20, warmup_steps: 50}
    data: {batch_size: 128}
  resources: {gpu: 0.25, cpu: 2}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def plan_of(path: Path, overrides: tuple[str, ...] = ()) -> SweepPlan:
    return plan_sweep(load_spec(path, overrides), spec_path=path)


def problems(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides)
    return str(info.value)


def stage(plan: SweepPlan, name: str):  # noqa: ANN201 - a StagePlan
    return next(s for s in plan.stages if s.name == name)


# ---- YAML and overrides -------------------------------------------------------------------


def test_yaml_reads_exponent_floats_as_numbers() -> None:
    # PyYAML alone reads 1e-5 as the string "1e-5"; every published lr is written that way.
    assert parse_yaml("a: [1e-5, 1.5e-4, 3, .5, 2e3, banana]", "x") == {
        "a": [1e-5, 1.5e-4, 3, 0.5, 2000.0, "banana"]
    }


def test_duplicate_key_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, BASE.replace("    lr: [1e-5, 4e-5, 1e-5]", "    lr: [1e-5]\n    lr: [2e-5]")
    )
    message = problems(path)
    assert f"{path}:14:" in message and "duplicate key 'lr'" in message


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nclean:\n  grid: {lr: [1e-5\n")
    assert f"{path}:4:1: YAML syntax error" in problems(path)


def test_parse_override_values_are_yaml() -> None:
    assert parse_override("clean.grid.lr=[1e-5, 2e-5]") == (["clean", "grid", "lr"], [1e-5, 2e-5])
    assert parse_override("profile=real") == (["profile"], "real")
    with pytest.raises(SpecError, match="expected dotted.key=value"):
        parse_override("clean..lr=1")


def test_apply_overrides_creates_sections_and_reports_bad_paths() -> None:
    raw = {"clean": {"grid": {"lr": [1.0]}}}
    out = apply_overrides(raw, ["clean.trial.optim.epochs=3"])
    assert out["clean"]["trial"] == {"optim": {"epochs": 3}}
    assert "trial" not in raw["clean"]  # the input is not changed
    with pytest.raises(SpecError, match="clean.grid.lr is a list"):
        apply_overrides(raw, ["clean.grid.lr.x=1"])


# ---- schema problems, all at once -----------------------------------------------------------


def test_every_schema_problem_in_one_message(tmp_path: Path) -> None:
    text = BASE.replace(
        "  resources: {gpu: 0.25, cpu: 2}", "  resources: {gpu: 1.5, cpu: 0}\n  methd: x"
    )
    text = text.replace("name: t", "name: t\nmax_failures: lots")
    message = problems(write(tmp_path, text))
    assert "4 problems" in message
    for line in (
        "clean.resources.gpu: 1.5: ask for a fraction of one GPU (<= 1) or whole GPUs",
        "clean.resources.cpu: must be > 0 (got 0)",
        "clean.methd: unknown key (allowed: method, grid, search, trial, repeats, baselines,",
        "max_failures: input should be a valid integer",
    ):
        assert line in message
    assert all(x.strip().startswith(str(tmp_path)) for x in message.splitlines()[1:])


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        ("{cpu: -1}", "clean.resources.cpu: must be > 0"),
        ("{gpu: -0.5}", "clean.resources.gpu: must be >= 0"),
        ("{gpu: 2.5}", "clean.resources.gpu: 2.5"),
        ("{gpu: 0.00001}", "finer than Ray's resource unit"),
        ("{tpu: 1}", "clean.resources.tpu: unknown key (allowed: cpu, gpu)"),
    ],
)
def test_impossible_resources(tmp_path: Path, resources: str, field: str) -> None:
    text = BASE.replace("  resources: {gpu: 0.25, cpu: 2}", f"  resources: {resources}")
    assert field in problems(write(tmp_path, text))


def test_whole_gpus_are_fine(tmp_path: Path) -> None:
    text = BASE.replace("  resources: {gpu: 0.25, cpu: 2}", "  resources: {gpu: 2, cpu: 0.5}")
    assert stage(
        plan_of(write(tmp_path, text), ("profile=real", "real.pretrain_data=/d")), "clean"
    ).resources == {"cpu": 0.5, "gpu": 2.0}


def test_empty_grid_and_empty_values(tmp_path: Path) -> None:
    assert "clean.grid: must not be empty" in problems(
        write(
            tmp_path,
            BASE.replace("lr: [1e-5, 4e-5, 1e-5]", "{}").replace("  grid:\n    {}", "  grid: {}"),
        )
    )
    assert "clean.grid.lr: must not be empty" in problems(
        write(tmp_path, BASE.replace("[1e-5, 4e-5, 1e-5]", "[]"))
    )


def test_unknown_parameter_names_the_registry(tmp_path: Path) -> None:
    message = problems(write(tmp_path, BASE.replace("    lr: [", "    learning_rate: [")))
    assert "clean.grid.learning_rate: unknown parameter 'learning_rate'" in message
    assert "sweeper ls params" in message


def test_missing_checkpoint(tmp_path: Path) -> None:
    text = "name: t\nstart: {checkpoint: models/gone.pt, objective: mmcl}\nclean:\n  grid: {lr: [1e-5]}\n"
    assert "start.checkpoint: no such file 'models/gone.pt'" in problems(write(tmp_path, text))


def test_cross_field_rules(tmp_path: Path) -> None:
    (tmp_path / "m.pt").write_bytes(b"x")
    text = "name: t\nstart: {checkpoint: m.pt, use: [a]}\nscreen:\n  grid: {shrink: [0.5]}\nclean:\n  grid: {lr: [1e-5]}\n"
    message = problems(write(tmp_path, text))
    assert "start.objective: required with start.checkpoint" in message
    assert "start.checkpoint: a checkpoint start takes no pretrain jobs" in message
    assert "clean.method: a screen stage feeds shrink_perturb" in message
    assert "start.use[0]" not in message  # no jobs to check against
    text = BASE.replace("name: t", "name: t\nstart: {use: [mmcl, vit]}")
    assert "start.use[1]: no pretrain job 'vit' (jobs: mmcl, mmcl_ssl)" in problems(
        write(tmp_path, text)
    )


def test_real_profile_needs_data_paths(tmp_path: Path) -> None:
    message = problems(write(tmp_path, BASE), ("profile=real",))
    assert "real.pretrain_data: empty; set it in the file or on the command line" in message


# ---- trial configs, blamed on the field that set them -------------------------------------


def test_grid_values_checked_like_trial_configs(tmp_path: Path) -> None:
    text = BASE.replace("[1e-5, 4e-5, 1e-5]", "[1e-5, -4e-5, abc]\n    l2_weight: [1, -2]")
    text = text.replace(
        "optim: {epochs: 20, warmup_steps: 50}", "optim: {epochs: 20, warmup_stepz: 50}"
    )
    message = problems(write(tmp_path, text))
    assert "clean.grid.lr[1]: must be > 0 (got -4e-05)" in message
    assert "clean.grid.lr[2]: input should be a valid number" in message
    assert "clean.grid.l2_weight[1]: must be >= 0 (got -2)" in message
    assert (
        "clean.trial.optim.warmup_stepz: unknown key (allowed: lr, epochs, warmup_steps" in message
    )


def test_shrink_must_be_in_zero_one(tmp_path: Path) -> None:
    text = BASE.replace(
        "clean:\n  grid:",
        "screen:\n  grid: {shrink: [0, 0.5, 1, 1.01], perturb_sigma: [0, -1]}\nclean:\n  method: shrink_perturb\n  grid:",
    )
    message = problems(write(tmp_path, text))
    assert "screen.grid.shrink[0]: must be > 0 (got 0)" in message
    assert "screen.grid.shrink[3]: must be <= 1 (got 1.01)" in message
    assert "screen.grid.perturb_sigma[1]: must be >= 0 (got -1)" in message
    assert "shrink[1]" not in message and "shrink[2]" not in message


def test_rule_across_fields_names_the_trial(tmp_path: Path) -> None:
    text = BASE.replace(
        "    lr: [1e-5, 4e-5, 1e-5]",
        "    lr: [1e-5]\n    method: [ssl, mmcl]\n    ssl_weight: [0, 1]",
    )
    message = problems(write(tmp_path, text))
    assert "every loss weight is 0" in message and "method=ssl, ssl_weight=0" in message


def test_pretrain_file_problems_name_it(tmp_path: Path) -> None:
    write(
        tmp_path,
        "name: p\npretrain:\n  jobs:\n    mmcl: {objective: mmcl, trial: {optim: {lr: 0}}}\n",
        "p.yaml",
    )
    path = write(tmp_path, "name: c\nstart: {pretrain: p.yaml}\nclean:\n  grid: {lr: [1e-5]}\n")
    assert f"{tmp_path / 'p.yaml'}: pretrain.jobs.mmcl.trial.optim.lr: must be > 0" in problems(
        path
    )


# ---- the plan ------------------------------------------------------------------------------


def test_stages_trials_and_ids(tmp_path: Path) -> None:
    plan = plan_of(write(tmp_path, BASE))
    assert [s.name for s in plan.stages] == ["pretrain", "clean"]
    pre, clean = plan.stages
    assert [t.trial_id for t in pre.trials] == ["pretrain-mmcl", "pretrain-mmcl_ssl"]
    assert pre.select == {
        "rule": "paper",
        "jobs": {
            "mmcl": {"objective": "mmcl", "rule": "max_acc"},
            "mmcl_ssl": {"objective": "mmcl_ssl", "rule": "closest_acc", "reference": "mmcl"},
        },
    }
    ids = [t.trial_id for t in clean.trials]
    assert ids == [
        "clean-mmcl-lr=1e-05-r0",
        "clean-mmcl-lr=4e-05-r0",
        "clean-mmcl-lr=1e-05-r1",
        "clean-mmcl_ssl-lr=1e-05-r0",
        "clean-mmcl_ssl-lr=4e-05-r0",
        "clean-mmcl_ssl-lr=1e-05-r1",
    ]
    # The repeated value is its own trial with its own seed.
    assert [t.config["seed"] for t in clean.trials] == [0, 0, 1, 0, 0, 1]
    assert [(t.start, t.objective, t.method, t.entry) for t in clean.trials[::3]] == [
        ("mmcl", "mmcl", "cleanclip", "clean"),
        ("mmcl_ssl", "mmcl_ssl", "cleanclip", "clean"),
    ]
    assert clean.trials[1].params == {"lr": 4e-05}
    # Planned again, the same ids and configs (resume relies on it).
    again = plan_of(write(tmp_path, BASE))
    assert [(t.trial_id, t.config) for t in again.stages[1].trials] == [
        (t.trial_id, t.config) for t in clean.trials
    ]


def test_trial_configs_are_full_and_valid(tmp_path: Path) -> None:
    plan = plan_of(write(tmp_path, BASE))
    for s in plan.stages:
        for t in s.trials:
            assert TrialConfig.model_validate(t.config).model_dump(mode="json") == t.config
            assert t.config["model"]["checkpoint"] is None  # the driver fills it from `start`
    pre, clean = plan.stages
    assert pre.trials[0].config["data"]["train"] == SYNTHETIC_TRAIN
    assert clean.trials[0].config["data"]["train"] == SYNTHETIC_CLEAN
    for t in (pre.trials[0], clean.trials[0]):
        assert (t.config["data"]["eval"], t.config["data"]["classnames"]) == (
            SYNTHETIC_EVAL,
            SYNTHETIC_CLASSNAMES,
        )
    assert [t.config["loss"]["ssl_weight"] for t in pre.trials] == [0.0, 1.0]
    assert clean.trials[0].config["loss"] | {} == clean.trials[0].config["loss"]
    assert (
        clean.trials[0].config["loss"]["mmcl_weight"],
        clean.trials[0].config["loss"]["ssl_weight"],
    ) == (1.0, 1.0)
    # keep: frontier (the cleaning default) needs every epoch; retention prunes the rest.
    assert [t.config["save"] for t in (pre.trials[0], clean.trials[0])] == ["every", "every"]


def test_embedded_profile_scales_the_paper_numbers(tmp_path: Path) -> None:
    plan = plan_of(write(tmp_path, BASE))
    pre, clean = plan.stages
    mmcl = pre.trials[0].config
    # 64 epochs x 0.25; batch 256 capped at 64, so 2000 pairs / 64 = 32 steps an epoch ->
    # warmup capped at 10% of 512 steps.
    assert (mmcl["optim"]["epochs"], mmcl["optim"]["warmup_steps"]) == (16, 51)
    assert mmcl["data"]["batch_size"] == 64
    assert mmcl["poison"]["amount"] == 0.05  # 1,500 poisons do not fit 2,000 synthetic pairs
    c = clean.trials[0].config
    # 20 epochs x 0.25; 500 pairs / 64 = 8 steps an epoch -> warmup capped at 10% of 40.
    assert (c["optim"]["epochs"], c["optim"]["warmup_steps"], c["data"]["max_samples"]) == (
        5,
        4,
        500,
    )
    assert plan.synthetic == {
        "n_train": 2000,
        "n_clean": 1000,
        "n_eval_per_class": 20,
        "image_size": 32,
        "seed": 0,
    }
    assert stage(plan, "clean").resources == {"cpu": 1.0, "gpu": 0.0}


def test_n_classes_enters_the_synthetic_args_and_cache_keys_only_off_default(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, BASE)
    default, ten, twenty = (
        plan_of(path, o)
        for o in ((), ("embedded.synthetic.n_classes=10",), ("embedded.synthetic.n_classes=20",))
    )
    assert "n_classes" not in default.synthetic  # the default world keeps its cache
    assert ten.synthetic == default.synthetic
    assert ten.pretrain_cache_keys == default.pretrain_cache_keys
    assert twenty.synthetic == {**default.synthetic, "n_classes": 20}
    assert set(twenty.pretrain_cache_keys.values()).isdisjoint(default.pretrain_cache_keys.values())
    assert "n_classes" in problems(path, ("embedded.synthetic.n_classes=31",))


def test_real_profile_keeps_the_paper_numbers(tmp_path: Path) -> None:
    plan = plan_of(
        write(tmp_path, BASE), ("profile=real", "real.pretrain_data=/data/cc3m/{0..9}.tar")
    )
    pre, clean = plan.stages
    mmcl = pre.trials[0].config
    assert (mmcl["optim"]["epochs"], mmcl["optim"]["warmup_steps"], mmcl["poison"]["amount"]) == (
        64,
        10000,
        1500,
    )
    assert mmcl["data"]["train"] == "/data/cc3m/{0..9}.tar" and mmcl["model"]["name"] == "RN50"
    c = clean.trials[0].config
    assert (c["data"]["train"], c["data"]["max_samples"], c["save"]) == (
        "/data/cc3m_clean_100k/train.csv",
        None,
        "every",
    )
    assert plan.synthetic is None
    assert (pre.resources, clean.resources) == ({"cpu": 8.0, "gpu": 1.0}, {"cpu": 2.0, "gpu": 0.25})


def test_overrides_change_the_plan(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    plan = plan_of(
        path, ("clean.trial.optim.epochs=3", "embedded.epoch_scale=1", "clean.grid.lr=[2e-5]")
    )
    clean = stage(plan, "clean")
    assert [t.trial_id for t in clean.trials] == [
        "clean-mmcl-lr=2e-05-r0",
        "clean-mmcl_ssl-lr=2e-05-r0",
    ]
    assert clean.trials[0].config["optim"]["epochs"] == 3
    assert "lr: [2.0e-05]" in plan.spec_text  # the resolved spec records what ran


def test_pretrain_cache_keys(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    plan = plan_of(path)
    assert set(plan.pretrain_cache_keys) == {"mmcl", "mmcl_ssl"}
    assert plan_of(path, ("clean.grid.lr=[1e-3]",)).pretrain_cache_keys == plan.pretrain_cache_keys
    bigger = plan_of(path, ("embedded.synthetic.n_train=3000",)).pretrain_cache_keys
    assert bigger["mmcl"] != plan.pretrain_cache_keys["mmcl"]
    # A cleaning file that names a pretrain file plans the same pre-training as that file.
    write(tmp_path, BASE.split("clean:")[0], "pre.yaml")
    clean_only = (
        "name: c\nstart: {pretrain: pre.yaml, use: [mmcl]}\n" + "clean:" + BASE.split("clean:")[1]
    )
    from_file = plan_of(write(tmp_path, clean_only, "c.yaml"))
    assert from_file.pretrain_cache_keys == {"mmcl": plan.pretrain_cache_keys["mmcl"]}
    assert [s.n_trials for s in from_file.stages] == [1, 3]  # mmcl needs no reference job


def test_resolved_spec_plans_the_same_trials(tmp_path: Path) -> None:
    write(tmp_path, BASE.split("clean:")[0], "pre.yaml")
    clean_only = "name: c\nstart: {pretrain: pre.yaml}\n" + "clean:" + BASE.split("clean:")[1]
    plan = plan_of(write(tmp_path, clean_only, "c.yaml"), ("clean.repeats=2",))
    saved = tmp_path / "elsewhere" / "spec.yaml"
    saved.parent.mkdir()
    saved.write_text(plan.spec_text)
    again = plan_of(saved)
    flat = lambda p: [(t.trial_id, t.config) for s in p.stages for t in s.trials]  # noqa: E731
    assert flat(again) == flat(plan) and len(flat(plan)) == 2 + 12
    assert again.pretrain_cache_keys == plan.pretrain_cache_keys


def test_screen_then_clean(tmp_path: Path) -> None:
    text = BASE.replace(
        "clean:\n  grid:",
        "screen:\n  grid: {shrink: [0.9, 1], perturb_sigma: [1e-3, 0.1, 1]}\n  pick: {max_asr: 12}\nclean:\n  method: shrink_perturb\n  grid:",
    )
    text = text.replace("name: t", "name: t\nstart: {use: [mmcl_ssl]}")
    plan = plan_of(write(tmp_path, text))
    assert [(s.name, s.n_trials) for s in plan.stages] == [
        ("pretrain", 2),
        ("screen", 6),
        ("clean", 3),
    ]
    screen = stage(plan, "screen")
    assert screen.select == {"rule": "max_acc_below_asr", "max_asr": 12.0}
    first = screen.trials[0]
    assert (first.trial_id, first.entry, first.start) == (
        "screen-mmcl_ssl-shrink=0.9-perturb_sigma=0.001-r0",
        "screen",
        "mmcl_ssl",
    )
    assert first.config["shrink_perturb"] | {"noise": None} == {
        "shrink": 0.9,
        "perturb_sigma": 0.001,
        "noise": None,
    }
    assert first.config["optim"]["epochs"] == 0 and first.params == {
        "shrink": 0.9,
        "perturb_sigma": 0.001,
    }
    assert screen.trials[3].params == {"shrink": 1.0, "perturb_sigma": 0.001}  # normalised to float
    cleaned = stage(plan, "clean").trials[0]
    # The clean trials start from the picked screen model: no second perturbation.
    assert cleaned.config["shrink_perturb"]["shrink"] == 1.0 and cleaned.method == "shrink_perturb"


def test_special_parameters(tmp_path: Path) -> None:
    text = BASE.replace(
        "    lr: [1e-5, 4e-5, 1e-5]",
        "    lr: [1e-5]\n    base_loss: [ssl]\n    clean_poisons: [0, 5]\n    cluster_source: [teacher]",
    )
    text = text.replace("name: t", "name: t\nstart: {use: [mmcl]}").replace(
        "clean:\n", "clean:\n  method: deep_cluster\n"
    )
    trials = stage(plan_of(write(tmp_path, text)), "clean").trials
    none, five = (t.config for t in trials)
    assert (
        five["loss"]["mmcl_weight"],
        five["loss"]["ssl_weight"],
        five["loss"]["cluster_weight"],
    ) == (0.0, 1.0, 1.0)
    assert (five["poison"]["kind"], five["poison"]["amount"]) == (
        "badnet",
        5.0,
    )  # the start's trigger
    assert none["poison"]["kind"] == "none"
    assert (
        five["loss"]["teacher_model"],
        five["loss"]["teacher_checkpoint"],
        five["loss"]["n_clusters"],
    ) == ("tiny-rn", "@start", 10)
    assert trials[1].params == {
        "lr": 1e-05,
        "base_loss": "ssl",
        "clean_poisons": 5,
        "cluster_source": "teacher",
    }


def test_checkpoint_start(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.pt").write_bytes(b"x")
    text = "name: t\nstart: {checkpoint: models/m.pt, objective: mmcl_ssl, trigger: badnet}\nclean:\n  grid: {lr: [1e-5], clean_poisons: [10]}\n"
    plan = plan_of(write(tmp_path, text))
    (only,) = plan.stages
    (trial,) = only.trials
    assert (trial.trial_id, trial.start, trial.objective) == (
        "clean-ckpt-lr=1e-05-clean_poisons=10-r0",
        None,
        "mmcl_ssl",
    )
    assert trial.config["model"]["checkpoint"] == str((tmp_path / "models" / "m.pt").resolve())
    assert trial.config["poison"]["kind"] == "badnet"
    assert plan.pretrain_cache_keys == {}


def test_optuna_stage(tmp_path: Path) -> None:
    text = BASE.replace("name: t", "name: t\nstart: {use: [mmcl_ssl]}")
    text = text.replace(
        "  grid:\n    lr: [1e-5, 4e-5, 1e-5]\n",
        "  search:\n    optuna:\n      n_trials: 7\n      seed: 3\n      params:\n        lr: {low: 1e-6, high: 1e-3, log: true}\n        epochs: {low: 2, high: 9}\n        l2_target: {choices: [zero, start]}\n",
    )
    clean = stage(plan_of(write(tmp_path, text)), "clean")
    assert clean.trials == () and clean.n_trials == 7
    s = clean.search
    assert s is not None
    assert s.params == {
        "lr": {"type": "float", "low": 1e-6, "high": 1e-3, "log": True},
        "epochs": {"type": "int", "low": 2.0, "high": 9.0, "log": False},
        "l2_target": {"type": "categorical", "choices": ["zero", "start"]},
    }
    assert (s.seed, s.entry, s.method, s.objective, s.start) == (
        3,
        "clean",
        "cleanclip",
        "mmcl_ssl",
        "mmcl_ssl",
    )
    assert s.metrics == {"clean_acc": "max", "asr": "min"}
    trial = apply_params(s.config, {"lr": 3e-4, "l2_target": "start"})
    assert (
        TrialConfig.model_validate(trial).optim.lr == 3e-4 and trial["loss"]["l2_target"] == "start"
    )
    json.dumps(s.config)  # the driver ships it to Ray as is


def test_optuna_problems(tmp_path: Path) -> None:
    text = BASE.replace(
        "  grid:\n    lr: [1e-5, 4e-5, 1e-5]\n",
        "  search:\n    optuna:\n      n_trials: 3\n      params:\n        lr: {low: 1e-3, high: 1e-6}\n",
    )
    message = problems(write(tmp_path, text))
    assert "clean.search.optuna.params.lr: low 0.001 must be below high 1e-06" in message
    fixed = text.replace("{low: 1e-3, high: 1e-6}", "{low: -1, high: 1e-6}")
    message = problems(write(tmp_path, fixed))
    assert "clean.search: an Optuna search runs from one start model" in message
    assert "params.lr.low: must be > 0" in problems(
        write(tmp_path, fixed.replace("name: t", "name: t\nstart: {use: [mmcl]}"))
    )


def test_int_and_float_spellings_are_one_value(tmp_path: Path) -> None:
    # 1 and 1.0 are the same learning rate: a repeat, not two trials with one id.
    text = BASE.replace("[1e-5, 4e-5, 1e-5]", "[1, 1.0]").replace(
        "name: t", "name: t\nstart: {use: [mmcl]}"
    )
    trials = stage(plan_of(write(tmp_path, text)), "clean").trials
    assert [(t.trial_id, t.params["lr"], t.config["seed"]) for t in trials] == [
        ("clean-mmcl-lr=1.0-r0", 1.0, 0),
        ("clean-mmcl-lr=1.0-r1", 1.0, 1),
    ]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such search-space file"):
        load_spec(tmp_path / "nope.yaml")
