"""Validation with limits, through the real CLI on real files: YAML size, trial cap, numbers
that are not numbers, target labels, the embedded profile's rescaled overrides, and the
Optuna scaling of sampled values."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path
from typing import Any

import pytest

from sweeper import registry
from sweeper.cli import main
from sweeper.eval_classes import SYNTHETIC_CLASSES
from sweeper.overrides import merge_layers
from sweeper.plan import apply_params, plan_file

GOOD = """\
name: t
pretrain:
  trial: {poison: {kind: badnet, amount: 1500}, optim: {lr: 1e-3, epochs: 64}}
  jobs: {mmcl: {objective: mmcl}}
clean:
  grid: {lr: [1e-5, 2e-5]}
  trial: {optim: {epochs: 20}}
  resources: {gpu: 0.25, cpu: 2}
"""

# Ten levels of ten aliases: 10^10 values once expanded, a few hundred bytes as written.
_BOMB_ANCHORS = "\n".join(
    f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]" if i else "x0: &x0 [1e-5]" for i in range(10)
)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- the size of a YAML document --------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    [
        GOOD.replace("grid: {lr: [1e-5, 2e-5]}", "grid: {lr: *x9}"),
        GOOD.replace("trial: {optim: {epochs: 20}}", "trial: {optim: {epochs: 20, lr: *x9}}"),
    ],
    ids=["clean.grid.lr", "clean.trial.optim.lr"],
)
def test_anchor_bomb_is_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    path = write(tmp_path, f"{_BOMB_ANCHORS}\n{where}")
    began = time.perf_counter()
    code, _, err = run_cli(["validate", str(path)], capsys)
    elapsed = time.perf_counter() - began
    assert code == 2
    assert f"{path}: the YAML document is too large: more than 2,000,000 nodes" in err
    # Refused in microseconds by design (the count never expands an alias); the bound is
    # generous for a loaded machine.
    assert elapsed < 5, elapsed


def test_anchor_bomb_in_an_override_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[2] / "search_spaces" / "demo.yaml"
    bomb = "{" + ", ".join(a.replace(": ", ": ", 1) for a in _BOMB_ANCHORS.splitlines()) + "}"
    code, _, err = run_cli(["validate", str(root), f"clean.trial.optim={bomb}"], capsys)
    assert code == 2 and "the YAML document is too large" in err


def test_recursive_alias_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD.replace("{lr: [1e-5, 2e-5]}", "{lr: &r [1e-5, *r]}"))
    code, _, err = run_cli(["validate", str(path)], capsys)
    assert code == 2
    assert (
        f"{path}: the YAML document is too large: an alias refers to a node that contains it" in err
    )


def test_a_value_is_checked_before_it_is_formatted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = "[" * 200 + "1" + "]" * 200
    huge = "x" * 100_000
    text = GOOD.replace("[1e-5, 2e-5]", f"[{deep}, 1e-5]").replace(
        "name: t", f"name: t\npaper: {huge}"
    )
    text = text.replace(
        "trial: {optim: {epochs: 20}}",
        f"trial: {{optim: {{epochs: 20}}, eval: {{target: {huge}}}}}",
    )
    code, _, err = run_cli(["validate", str(write(tmp_path, text))], capsys)
    assert code == 2
    assert "clean.grid.lr[0]: must be a number or a string (got list)" in err
    assert len(err) < 2_000  # the long string is shown cut, never whole


# ---- linear time and the trial cap ------------------------------------------------------


def test_a_grid_of_200000_values_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m.pt").write_bytes(b"x")
    values = ", ".join(f"{(i + 1) * 1e-9:.6g}" for i in range(200_000))
    text = (
        "name: big\nmax_trials: 200000\nstart: {checkpoint: m.pt, objective: mmcl}\n"
        f"clean:\n  grid:\n    lr: [{values}]\n"
    )
    path = write(tmp_path, text)
    began = time.perf_counter()
    code, out, err = run_cli(["validate", str(path)], capsys)
    elapsed = time.perf_counter() - began
    assert code == 0, err
    assert "200000 trials in stages clean (200000)" in out
    # About 5 s on a shared 2-core machine (an hour before the planner was linear); the
    # bound only catches a return to per-trial validation.
    assert elapsed < 120, elapsed


def test_the_trial_cap_names_its_field_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 40 values x 10 parameters: 10^16 trials, refused before any is expanded.
    grid = ", ".join(
        f"{name}: [{', '.join(str(0.01 * (i + 1)) for i in range(40))}]"
        for name in ("lr", "weight_decay", "ssl_weight", "mmcl_weight", "l2_weight")
    )
    path = write(tmp_path, GOOD.replace("{lr: [1e-5, 2e-5]}", "{" + grid + "}"))
    began = time.perf_counter()
    code, _, err = run_cli(["validate", str(path)], capsys)
    assert code == 2 and time.perf_counter() - began < 5
    assert (
        f"{path}: max_trials: the search space plans 102,400,001 trials (pretrain 1, clean "
        "102,400,000), more than max_trials 100,000; if that many are meant, raise the cap: "
        "`max_trials: 102400001` in the file or max_trials=102400001 on the command line"
    ) in err
    small = write(tmp_path, GOOD + "max_trials: 2\n", "small.yaml")
    code, _, err = run_cli(["validate", str(small)], capsys)
    assert code == 2 and "more than max_trials 2" in err
    code, out, _ = run_cli(["validate", str(small), "max_trials=3"], capsys)
    assert code == 0 and "3 trials" in out


# ---- numbers where numbers belong -------------------------------------------------------

BAD_NUMBERS = {
    "1e400 in a grid": (
        ("[1e-5, 2e-5]", "[1e-5, 1e400]"),
        "clean.grid.lr[1]: must be a finite number (got inf",
    ),
    "'inf' in a grid": (
        ("[1e-5, 2e-5]", '[1e-5, "inf"]'),
        "clean.grid.lr[1]: must be a finite number (got 'inf')",
    ),
    "nan in a grid": (
        ("[1e-5, 2e-5]", "[.nan, 2e-5]"),
        "clean.grid.lr[0]: must be a finite number (got nan)",
    ),
    "true as epochs of a grid": (
        ("{lr: [1e-5, 2e-5]}", "{lr: [1e-5], epochs: [true, 3]}"),
        "clean.grid.epochs[0]: must be a number, not a boolean (got true)",
    ),
    "true as epochs of a trial": (
        ("optim: {epochs: 20}", "optim: {epochs: true}"),
        "clean.trial.optim.epochs: must be a number, not a boolean (got true)",
    ),
    ".inf as a pre-training lr": (
        ("lr: 1e-3, epochs: 64", "lr: .inf, epochs: 64"),
        "pretrain.trial.optim.lr: must be a finite number (got inf",
    ),
    "-1e400 as a poison amount": (
        ("amount: 1500", "amount: -1e400"),
        "pretrain.trial.poison.amount: must be a finite number (got -inf",
    ),
    ".inf cpus": (("cpu: 2", "cpu: .inf"), "clean.resources.cpu: must be a finite number (got inf"),
    "true gpus": (
        ("gpu: 0.25", "gpu: true"),
        "clean.resources.gpu: must be a number, not a boolean",
    ),
    "true repeats": (
        ("  trial: {optim", "  repeats: true\n  trial: {optim"),
        "clean.repeats: must be a number, not a boolean (got true)",
    ),
    "nan epoch scale": (
        ("name: t", "name: t\nembedded: {epoch_scale: .nan}"),
        "embedded.epoch_scale: must be a finite number (got nan)",
    ),
}


@pytest.mark.parametrize("case", BAD_NUMBERS)
@pytest.mark.parametrize("command", ["validate", "launch"])
def test_non_finite_numbers_and_booleans_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: str
) -> None:
    (old, new), expected = BAD_NUMBERS[case]
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    argv = ["validate", str(path)] if command == "validate" else ["launch", str(path), "--dry-run"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    assert f"{path}: {expected}" in err


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "clean.trial.optim.epochs=true",
            "clean.trial.optim.epochs: must be a number, not a boolean",
        ),
        ("clean.grid.lr=[1e-5, .inf]", "clean.grid.lr[1]: must be a finite number (got inf"),
        (
            "clean.search.optuna.params.lr.high=.inf",
            "clean.search.optuna.params.lr.high: must be a finite number",
        ),
        (
            "clean.search.optuna.n_trials=true",
            "clean.search.optuna.n_trials: must be a number, not a boolean",
        ),
    ],
)
def test_bad_numbers_on_the_command_line(
    capsys: pytest.CaptureFixture[str], override: str, expected: str
) -> None:
    root = Path(__file__).resolve().parents[2] / "search_spaces"
    space = root / ("optuna_cc6m_mmcl_ssl.yaml" if "search" in override else "demo.yaml")
    code, _, err = run_cli(["validate", str(space), override], capsys)
    assert code == 2 and f"{space}: {expected}" in err


# ---- the target label against the eval classes -------------------------------------------


@pytest.mark.parametrize("command", ["validate", "launch"])
def test_a_target_label_that_is_no_eval_class_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    text = GOOD.replace("amount: 1500}", "amount: 1500, target: cat}")
    text = text.replace("[1e-5, 2e-5]", "[1e-5, -2e-5]")  # reported in the same message
    path = write(tmp_path, text)
    argv = ["validate", str(path)] if command == "validate" else ["launch", str(path), "--dry-run"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    assert (
        f"{path}: pretrain.trial.poison.target: target label 'cat' is not a class of the "
        "embedded profile's synthetic eval set (10 classes: banana, apple, ball, box, star, "
        "ring, cross, tree, house, arrow); set it to one of them"
    ) in err
    assert f"{path}: clean.grid.lr[1]: must be > 0 (got -2e-05)" in err


def test_an_eval_target_of_the_clean_stage_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = GOOD.replace(
        "trial: {optim: {epochs: 20}}", "trial: {optim: {epochs: 20}, eval: {target: dog}}"
    )
    code, _, err = run_cli(["validate", str(write(tmp_path, text))], capsys)
    assert code == 2 and "clean.trial.eval.target: target label 'dog' is not a class" in err


def test_real_eval_folder_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "val"
    for name in ("n01", "n02"):
        (folder / name).mkdir(parents=True)
    path = write(tmp_path, GOOD)
    real = ["profile=real", "real.pretrain_data=/data/x.tar", f"real.eval_data={folder}"]
    code, _, err = run_cli(["validate", str(path), *real], capsys)
    assert code == 2
    assert (
        f"pretrain.trial.poison.target: target label 'banana' is not a class of the "
        f"subfolders of {folder} (2 classes: n01, n02)"
    ) in err
    (folder / "classnames.txt").write_text("apple\nbanana\n")
    code, _, err = run_cli(["validate", str(path), *real], capsys)
    assert code == 0, err
    # A folder that is not there (yet) is the trial's to report.
    missing = [
        "profile=real",
        "real.pretrain_data=/data/x.tar",
        f"real.eval_data={tmp_path / 'no'}",
    ]
    assert run_cli(["validate", str(path), *missing], capsys)[0] == 0


def test_the_synthetic_classes_are_the_trainers_ones() -> None:
    # Read from the source: importing trainers.data imports torch, seconds `validate` avoids.
    source = Path(__file__).resolve().parents[2] / "trainers" / "data" / "synthetic.py"
    tree = ast.parse(source.read_text())
    value = next(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id == "DEFAULT_CLASSES"
    )
    assert tuple(ast.literal_eval(value)) == SYNTHETIC_CLASSES[:10]


def test_the_planners_synthetic_classes_are_the_worlds() -> None:
    from trainers.data.synthetic import classes_for

    assert classes_for(len(SYNTHETIC_CLASSES)) == SYNTHETIC_CLASSES


def test_a_target_of_a_larger_synthetic_world(capsys: pytest.CaptureFixture[str]) -> None:
    """ "heart" is class 14: a target with n_classes 20 (the demo's), refused with 10."""
    from sweeper.cli import main

    demo = str(Path(__file__).resolve().parents[2] / "search_spaces" / "demo.yaml")
    target = "pretrain.trial.poison.target=heart"
    assert main(["validate", demo, target, "embedded.synthetic.n_classes=20"]) == 0
    capsys.readouterr()
    assert main(["validate", demo, target, "embedded.synthetic.n_classes=10"]) == 2
    err = capsys.readouterr().err
    assert "heart" in err and "(10 classes:" in err, err


# ---- no silent overrides -------------------------------------------------------------------


def test_dry_run_states_each_rescaled_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD)
    overrides = [
        "clean.trial.optim.epochs=3",
        "clean.grid.epochs=[4, 8, 1]",
        "clean.trial.data.batch_size=256",
        "pretrain.trial.poison.amount=100",
        "clean.grid.lr=[1e-5]",  # not rescaled: no line
    ]
    code, out, err = run_cli(["launch", str(path), "--dry-run", *overrides], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert (
        "clean.grid.epochs=[4, 8, 1] runs as [1, 2, 1] "
        "(embedded.epoch_scale 0.25; embedded.epoch_scale=1 runs it as written)"
    ) in lines
    assert (
        "clean.trial.data.batch_size=256 runs as 64 "
        "(embedded.max_batch_size 64; embedded.max_batch_size=256 runs it as written)"
    ) in lines
    assert (
        "pretrain.trial.poison.amount=100 runs as 0.05 (embedded.poison_fraction 0.05 replaces "
        "a count of poisoned pairs, which the synthetic set may not hold)"
    ) in lines
    assert not any(line.startswith("clean.grid.lr") for line in lines)
    # The grid sets epochs in every trial: the clean.trial value never runs, so no line.
    assert not any(line.startswith("clean.trial.optim.epochs") for line in lines)
    code, out, _ = run_cli(["launch", str(path), "--dry-run", "--json", *overrides], capsys)
    assert code == 0 and len(json.loads(out)["rescaled"]) == 3


def test_the_issue_example_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD)
    code, out, _ = run_cli(["launch", str(path), "--dry-run", "clean.trial.optim.epochs=3"], capsys)
    assert code == 0
    assert (
        "clean.trial.optim.epochs=3 runs as 1 "
        "(embedded.epoch_scale 0.25; embedded.epoch_scale=1 runs it as written)"
    ) in out.splitlines()
    for quiet in (["embedded.epoch_scale=1"], ["profile=real", "real.pretrain_data=/d.tar"]):
        code, out, _ = run_cli(
            ["launch", str(path), "--dry-run", "clean.trial.optim.epochs=3", *quiet], capsys
        )
        assert code == 0 and "runs as" not in out
    code, out, _ = run_cli(["launch", str(path), "--dry-run", "--json"], capsys)
    assert "rescaled" not in json.loads(out)  # no override, no key: the JSON is as it was


# ---- Optuna: sampled values scaled as grid values are ----------------------------------------

OPTUNA = GOOD.replace(
    "  grid: {lr: [1e-5, 2e-5]}",
    "  search:\n    optuna:\n      n_trials: 4\n      params:\n        epochs: {low: 2, high: 40}",
).replace("name: t", "name: t\nstart: {use: [mmcl]}")


def test_sampled_epochs_get_the_embedded_scale(tmp_path: Path) -> None:
    _, plan = plan_file(write(tmp_path, OPTUNA))
    search = plan.stages[-1].search
    assert search is not None and search.scaling is not None
    sampled = apply_params(search.config, {"epochs": 8}, search.scaling)
    assert sampled["optim"]["epochs"] == 2  # 8 x 0.25, as clean.grid.epochs: [8] runs
    grid = write(tmp_path, GOOD.replace("{lr: [1e-5, 2e-5]}", "{epochs: [8]}"), "grid.yaml")
    _, grid_plan = plan_file(grid, ("start.use=[mmcl]",))
    assert sampled == grid_plan.stages[-1].trials[0].config
    # A sampled value that the scaling does not read leaves the template as it is.
    assert apply_params(search.config, {}, search.scaling) == search.config
    # Without the scaling (the call of a plan saved before it existed): as written.
    assert apply_params(search.config, {"epochs": 8})["optim"]["epochs"] == 8


def test_the_real_profile_samples_as_written(tmp_path: Path) -> None:
    _, plan = plan_file(write(tmp_path, OPTUNA), ("profile=real", "real.pretrain_data=/d.tar"))
    search = plan.stages[-1].search
    assert search is not None and search.scaling is None
    assert apply_params(search.config, {"epochs": 8}, search.scaling)["optim"]["epochs"] == 8


# ---- the registry ----------------------------------------------------------------------------


def test_test_hooks_are_not_listed_but_still_usable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["ls", "params"], capsys)
    assert code == 0 and "lr " in out and "fail_at_epoch" not in out
    assert not hasattr(registry, "param_path")
    path = write(tmp_path, GOOD.replace("{lr: [1e-5, 2e-5]}", "{lr: [1e-5], fail_at_epoch: [1]}"))
    code, out, err = run_cli(["validate", str(path)], capsys)
    assert code == 0, err
    bad = write(tmp_path, GOOD.replace("{lr: [1e-5, 2e-5]}", "{learning_rate: [1]}"), "bad.yaml")
    code, _, err = run_cli(["validate", str(bad)], capsys)
    assert code == 2 and "unknown parameter 'learning_rate'" in err and "fail_at_epoch" not in err


# ---- the linear planner plans what a trial-by-trial check plans ----------------------------

POOL: dict[str, list[object]] = {
    "lr": [1e-5, 3e-4, 1, 2e-3],
    "epochs": [1, 3, 8, 20, 0],
    "warmup_steps": [0, 5, 50, 10000],
    "batch_size": [16, 64, 256],
    "ssl_weight": [0.5, 1],
    "cluster_weight": [0, 0.5, 2],
    "cluster_source": ["kmeans", "teacher"],
    "n_clusters": [5, 1000],
    "seed": [0, 3],
    "method": ["cleanclip", "ssl", "deep_cluster", "heavy_reg"],
    "base_loss": ["mmcl", "mmcl_ssl"],
    "l2_target": ["zero", "start"],
}


def _reference(planner: Any, trial: Any, method_where: str) -> dict[str, Any]:
    """One trial's config the slow way: every layer merged and checked as one TrialConfig."""
    from sweeper.overrides import Layer, nested
    from sweeper.trial_configs import apply_changes, check_layers, scaling_changes

    layers = planner.start_layers("clean", trial.start, trial.method, method_where)
    for name, value in trial.params.items():
        if name == "base_loss":
            layers.append(Layer(name, {"loss": dict(registry.BASE_LOSSES[value])}))
        elif registry.PARAMS[name].path is not None:
            layers.append(Layer(name, nested(str(registry.PARAMS[name].path), value)))
    fill = planner.teacher_fill("clean", merge_layers(layers).get("loss", {}))
    if fill is not None:
        layers.append(planner.teacher_layer(fill))
    config, problems = check_layers(layers, {})
    assert config is not None, problems
    if planner.embedded:
        apply_changes(config, scaling_changes(config, planner.rules["clean"]))
    occurrence = int(trial.trial_id.rsplit("-r", 1)[1])
    config["seed"] += occurrence
    return config


@pytest.mark.parametrize("seed", range(24))
def test_linear_planner_agrees_with_a_trial_by_trial_check(tmp_path: Path, seed: int) -> None:
    import random

    from sweeper.planner import Planner
    from sweeper.spec import read_spec_parts

    rnd = random.Random(seed)
    names = rnd.sample(sorted(POOL), rnd.randint(1, 4))
    grid = {n: rnd.sample(POOL[n], rnd.randint(1, len(POOL[n]))) for n in names}
    grid[names[0]] = [*grid[names[0]], grid[names[0]][0]]  # a repeated value
    text = GOOD.replace("{lr: [1e-5, 2e-5]}", json.dumps(grid))
    text = text.replace(
        "trial: {optim: {epochs: 20}}", "trial: {optim: {epochs: 20}, data: {batch_size: 128}}"
    )
    overrides = ("profile=real", "real.pretrain_data=/d.tar") if seed % 3 == 0 else ()
    path = write(tmp_path, text)
    _, plan = plan_file(path, overrides)
    spec, _ = read_spec_parts(path, overrides)
    planner = Planner(spec, path)
    planner.stages()  # fills the pretrain job configs the layers refer to
    for trial in plan.stages[-1].trials:
        where = "clean.method"
        if "method" in grid:
            where = f"clean.grid.method[{grid['method'].index(trial.params['method'])}]"
        assert trial.config == _reference(planner, trial, where), trial.trial_id
