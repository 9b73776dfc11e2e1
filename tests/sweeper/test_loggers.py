"""Experiment trackers: the spec field and its checks, and one real sweep logging to
TensorBoard and MLflow, read back with their own formats and compared with the store."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import pytest
import yaml

from results.store import read_epochs
from sweeper import registry
from sweeper.cli import main
from sweeper.errors import SpecError
from sweeper.plan import plan_file
from sweeper.plan_io import load_plan
from tests.sweeper.test_launch import sweep_of, tiny_spec


def _with_loggers(path: Path, loggers: Any) -> Path:
    spec = yaml.safe_load(path.read_text())
    spec["loggers"] = loggers
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_unknown_logger_names_the_field_and_the_registry(tmp_path: Path) -> None:
    path = _with_loggers(tiny_spec(tmp_path), ["tensorbored"])
    with pytest.raises(SpecError) as err:
        plan_file(path)
    assert "loggers[0]" in str(err.value) and "unknown logger 'tensorbored'" in str(err.value)
    assert "tensorboard, mlflow, wandb" in str(err.value) and "sweeper ls loggers" in str(err.value)


def test_a_logger_without_its_package_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A registered logger whose package no environment has: the spec refuses it at once.
    absent = registry.Logger("absent", "a tracker", "sweeper_no_such_tracker_package")
    monkeypatch.setattr(registry, "LOGGERS", {**registry.LOGGERS, "absent": absent})
    path = tiny_spec(tmp_path)
    with pytest.raises(SpecError) as err:
        plan_file(path, loggers=["absent"])
    text = str(err.value)
    assert str(path) in text and "loggers[0]" in text
    assert "needs the sweeper_no_such_tracker_package package" in text
    assert "pip install 'sweeper[trackers]'" in text


def test_launch_flag_adds_to_the_files_loggers_once_each(tmp_path: Path) -> None:
    path = _with_loggers(tiny_spec(tmp_path), ["tensorboard"])
    _, plan = plan_file(path, loggers=["mlflow", "tensorboard"])
    assert plan.loggers == ("tensorboard", "mlflow")


def test_dry_run_names_the_loggers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tiny_spec(tmp_path)
    assert main(["launch", str(path), "--dry-run", "--json", "--logger", "tensorboard"]) == 0
    assert '"loggers": [\n    "tensorboard"\n  ]' in capsys.readouterr().out
    assert main(["launch", str(path), "--dry-run", "--logger", "nope"]) == 2
    assert "loggers[0]: unknown logger 'nope'" in capsys.readouterr().err


def test_wandb_is_offline_unless_the_user_is_logged_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sweeper.ray_backend.loggers import wandb_mode

    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc))
    assert wandb_mode() == "offline"  # no netrc at all
    netrc.write_text("machine example.org login u password p\n")
    assert wandb_mode() == "offline"  # credentials, but not W&B's
    netrc.write_text("machine api.wandb.ai login user password k3y\n")  # what `wandb login` writes
    assert wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode() == "disabled"
    monkeypatch.delenv("WANDB_MODE")
    netrc.unlink()
    monkeypatch.setenv("WANDB_API_KEY", "k3y")
    assert wandb_mode() == "online"


def test_ls_loggers_lists_every_registered_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "loggers"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == list(registry.LOGGERS)


def _tfrecords(path: Path) -> list[bytes]:
    """The records of a TensorBoard event file (TFRecord framing: length, its CRC, data,
    its CRC); the CRCs are not checked."""
    data, out, pos = path.read_bytes(), [], 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        out.append(data[pos + 12 : pos + 12 + length])
        pos += 12 + length + 4
    return out


def _tensorboard(trial_dir: Path) -> tuple[dict[str, dict[int, float]], dict[str, Any]]:
    """Scalars by tag and step, and the hparams, from a trial's event files."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    scalars: dict[str, dict[int, float]] = {}
    hparams: dict[str, Any] = {}
    for f in sorted(trial_dir.glob("events.out.tfevents.*")):
        for raw in _tfrecords(f):
            event = Event.FromString(raw)
            for v in event.summary.value:
                if v.metadata.plugin_data.plugin_name == "hparams":
                    info = HParamsPluginData.FromString(v.metadata.plugin_data.content)
                    for k, val in info.session_start_info.hparams.items():
                        hparams[k] = val.number_value or val.string_value
                elif v.HasField("simple_value"):
                    scalars.setdefault(v.tag, {})[event.step] = v.simple_value
    return scalars, hparams


def _mlflow(uri: str, experiment: str) -> dict[str, dict[str, Any]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r} in {uri}"
    out = {}
    for run in client.search_runs([exp.experiment_id]):
        history = {
            m: {h.step: h.value for h in client.get_metric_history(run.info.run_id, m)}
            for m in ("clean_acc", "asr")
        }
        out[run.info.run_name] = {"params": run.data.params, "status": run.info.status, **history}
    return out


@pytest.mark.slow
def test_a_sweep_logs_every_epoch_to_tensorboard_and_mlflow(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tensorboardX")
    pytest.importorskip("mlflow")
    store = tmp_path / "store"
    spec = _with_loggers(tiny_spec(tmp_path), ["tensorboard"])
    assert main(["launch", str(spec), "--store", str(store), "--logger", "mlflow"]) == 0
    out, err = capfd.readouterr()
    sweep = sweep_of(out)
    sweep_dir = store / sweep
    assert load_plan(sweep_dir / "plan.json").loggers == ("tensorboard", "mlflow")  # resume

    rows = read_epochs(store, [sweep]).to_pylist()
    by_trial: dict[str, dict[int, dict[str, Any]]] = {}
    for r in rows:
        by_trial.setdefault(r["trial_id"], {})[r["epoch"]] = r
    assert len(by_trial) == 3  # pretrain-mmcl and two cleaning trials

    logs = sweep_dir / "logs"
    runs = _mlflow(f"sqlite:///{logs / 'mlflow.db'}", "tiny")
    assert set(runs) == set(by_trial)
    for tid, epochs in by_trial.items():
        scalars, hparams = _tensorboard(logs / "tensorboard" / tid)
        for metric in ("clean_acc", "asr"):
            want = {e: r[metric] for e, r in epochs.items()}
            # TensorBoard keeps float32.
            got = scalars[f"ray/tune/{metric}"]
            assert got == pytest.approx(want, rel=1e-6), (tid, metric)
            assert runs[tid][metric] == pytest.approx(want, rel=1e-12), (tid, metric)
        assert runs[tid]["status"] == "FINISHED"
        lr = epochs[0].get("p_lr")
        if tid.startswith("clean-"):
            assert hparams["p_lr"] == pytest.approx(lr) and runs[tid]["params"]["p_lr"] == str(lr)
        assert runs[tid]["params"]["stage"] == hparams["stage"] == tid.split("-")[0]

    # The progress lines: each running trial's epoch of its 2, and an estimate.
    assert re.search(r"^\[clean\] 0/2 done, 2 running, 0 failed \| .*/2", out, re.M), out
    assert re.search(r"^\[clean\] 2/2 done, 0 running, 0 failed \| done \|", out, re.M), out
    # A successful run ends without Ray's worker-exit traceback or the slow-callback warning.
    assert "SystemExit" not in out + err, err
    assert "performance bottleneck" not in out + err, err
