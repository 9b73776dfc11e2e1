"""The cluster images, checked without a container engine.

Nothing is built or started here: the Dockerfile and the compose file are parsed, what they
reference is checked against the repository, and every `sweeper ...` / `ray ...` command that
they, docker/README.md and the README's "Run on a cluster" section run is parsed by the real
CLI (argparse for sweeper, ray's click commands for ray), so a renamed flag fails here.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from sweeper.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"
DOCKER_README = ROOT / "docker" / "README.md"
README = ROOT / "README.md"

INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
    "WORKDIR",
}  # fmt: skip
# Tokens that end one shell command (shlex with punctuation_chars yields them on their own).
OPERATORS = {";", "&&", "||", "|", "&", "(", ")", ">", ">>", "<", ";;"}


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


def dockerfile() -> list[Instruction]:
    """Logical instructions: comments dropped, backslash continuations joined."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for no, raw in enumerate(DOCKERFILE.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments may sit inside a continued instruction too
        if not pending:
            start = no
        pending.append(stripped.removesuffix("\\").strip())
        if stripped.endswith("\\"):
            continue
        keyword, _, args = " ".join(pending).partition(" ")
        out.append(Instruction(start, keyword, args.strip()))
        pending = []
    assert not pending, f"{DOCKERFILE}: the last instruction ends in a line continuation"
    return out


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), COMPOSE
    return data


def readme_section() -> str:
    text = README.read_text()
    start = text.index("## Run on a cluster")
    # ... and "Distributed pre-training" after it, whose cluster commands are checked too.
    end = text.index("\n## The results store", start + 1)
    return text[start:end]


# --- finding the commands -----------------------------------------------------------------


def shell_commands(script: str) -> list[list[str]]:
    """Every `sweeper ...` / `ray ...` argv in a shell script, up to the next operator."""
    found: list[list[str]] = []
    for line in script.replace("\\\n", " ").splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        lex.commenters = "#"
        tokens = list(lex)
        for i, tok in enumerate(tokens):
            if tok in ("sweeper", "ray"):
                argv: list[str] = []
                for t in tokens[i:]:
                    if t in OPERATORS:
                        break
                    argv.append(t)
                found.append(argv)
    return found


def argv_commands(argv: list[str]) -> list[list[str]]:
    """A compose/Dockerfile exec-form command: itself, or the script of `sh -c`."""
    if argv[:1] in (["CMD"], ["CMD-SHELL"]):  # healthcheck `test`
        argv = argv[1:] if argv[0] == "CMD" else ["sh", "-c", " ".join(argv[1:])]
    if argv[:2] in (["sh", "-c"], ["bash", "-c"]):
        # Compose turns `$$` into a literal `$`; the shell then sees the script as here.
        return shell_commands(argv[2].replace("$$", "$"))
    return [argv] if argv and argv[0] in ("sweeper", "ray") else []


def fenced_blocks(markdown: str) -> str:
    """The shell blocks (a YAML block's closing fence must not open one)."""
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", markdown, re.S | re.M)
    return "\n".join(body for lang, body in blocks if lang in ("", "bash", "sh", "console"))


def inline_commands(markdown: str) -> list[list[str]]:
    """Inline mentions (`sweeper status SWEEP_ID`, `ray get-auth-token`) name a command, not
    always a whole invocation: their command path is checked, with `--help` as the rest."""
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", markdown, flags=re.S))
    out = []
    for span in spans:
        words = span.split()
        if (
            len(words) >= 2
            and words[0] in ("sweeper", "ray")
            and re.fullmatch(r"[a-z-]+", words[1])
        ):
            out.append([*words[:2], "--help"])
    return out


def all_commands() -> list[tuple[str, list[str]]]:
    cmds: list[tuple[str, list[str]]] = []
    for ins in dockerfile():
        if ins.keyword in ("CMD", "ENTRYPOINT", "RUN", "HEALTHCHECK"):
            # HEALTHCHECK [--interval=...] CMD <command>
            body = (
                ins.args.split("CMD", 1)[-1].strip() if ins.keyword == "HEALTHCHECK" else ins.args
            )
            found = (
                argv_commands(json.loads(body)) if body.startswith("[") else shell_commands(body)
            )
            cmds += [(f"Dockerfile:{ins.line}", c) for c in found]
    for name, svc in compose()["services"].items():
        for key in ("command", "entrypoint"):
            value = svc.get(key)
            if value:
                found = argv_commands(value if isinstance(value, list) else ["sh", "-c", value])
                cmds += [(f"compose {name}.{key}", c) for c in found]
        if "healthcheck" in svc:
            cmds += [
                (f"compose {name}.healthcheck", c)
                for c in argv_commands(svc["healthcheck"]["test"])
            ]
    for label, text in (("README", readme_section()), ("docker/README", DOCKER_README.read_text())):
        cmds += [(f"{label} block", c) for c in shell_commands(fenced_blocks(text))]
        cmds += [(f"{label} inline", c) for c in inline_commands(text)]
    return cmds


COMMANDS = all_commands()


def test_the_commands_were_found() -> None:
    """Guards the extraction itself: an empty list would make the checks below vacuous."""
    where = {label.split()[0].split(":")[0] for label, _ in COMMANDS}
    assert where == {"Dockerfile", "compose", "README", "docker/README"}, where
    starts = {" ".join(argv[:2]) for _, argv in COMMANDS}
    assert {"ray start", "sweeper launch", "ray get-auth-token", "ray health-check"} <= starts


# --- checking them with the real CLIs -----------------------------------------------------


def check_sweeper(argv: list[str]) -> None:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args = build_parser().parse_args(argv[1:])
    except SystemExit as exit_:
        assert exit_.code == 0, f"`{shlex.join(argv)}` is not a sweeper command: {err.getvalue()}"
        return  # --help
    if args.command == "launch" and args.file != "..." and not args.dry_run:
        # Plan it for real (starts and writes nothing): the file and every override must exist.
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([*argv[1:], "--dry-run"])
        assert rc == 0, f"`{shlex.join(argv)} --dry-run` failed: {err.getvalue()}"
        assert "total" in out.getvalue()


def check_ray(argv: list[str]) -> None:
    from ray.scripts.scripts import cli

    cmd: click.Command = cli
    path, rest = ["ray"], argv[1:]
    while isinstance(cmd, click.Group):
        assert rest, f"`{shlex.join(argv)}`: `{' '.join(path)}` needs a subcommand"
        sub = cmd.commands.get(rest[0])
        assert sub is not None, f"`{shlex.join(argv)}`: no command `{' '.join(path)} {rest[0]}`"
        path, rest, cmd = [*path, rest[0]], rest[1:], sub
    try:
        # Parses and validates the options like `ray` would, without running the command.
        cmd.make_context(" ".join(path), list(rest))
    except click.exceptions.Exit as exit_:
        assert exit_.exit_code == 0
    except click.ClickException as err:
        pytest.fail(f"`{shlex.join(argv)}`: {err.format_message()}")


@pytest.mark.parametrize(
    "argv", [c for _, c in COMMANDS], ids=[f"{w}: {shlex.join(c)[:60]}" for w, c in COMMANDS]
)
def test_every_command_is_a_real_cli_command(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the image's WORKDIR has the same layout (search_spaces/ ...)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (check_sweeper if argv[0] == "sweeper" else check_ray)(argv)


def test_a_wrong_flag_would_be_caught() -> None:
    with pytest.raises(AssertionError, match="not a sweeper command"):
        check_sweeper(["sweeper", "launch", "search_spaces/demo.yaml", "--adress", "x:1"])
    with pytest.raises(pytest.fail.Exception, match="No such option"):
        check_ray(["ray", "start", "--head", "--dashboard-hots", "0.0.0.0"])
    with pytest.raises(AssertionError, match="no command `ray begin`"):
        check_ray(["ray", "begin"])


# --- the Dockerfile -----------------------------------------------------------------------


def test_dockerfile_instructions_are_valid() -> None:
    ins = dockerfile()
    unknown = [(i.line, i.keyword) for i in ins if i.keyword not in INSTRUCTIONS]
    assert not unknown, f"{DOCKERFILE}: unknown instructions {unknown}"
    first = next(i for i in ins if i.keyword != "ARG")
    assert first.keyword == "FROM", f"{DOCKERFILE}: the first instruction must be FROM"
    image = first.args.split()[0]
    assert ":" in image and not image.endswith(":latest"), f"pin the base image tag: {image}"
    for i in ins:
        if i.keyword in ("CMD", "ENTRYPOINT") and i.args.startswith("["):
            assert all(isinstance(a, str) for a in json.loads(i.args)), i
    exposed = {p for i in ins if i.keyword == "EXPOSE" for p in i.args.split()}
    assert {"6379", "8265"} <= exposed


def test_dockerfile_copies_real_files_and_installs_with_the_constraints() -> None:
    ins = dockerfile()
    ignore = (ROOT / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    copied: list[str] = []
    for i in ins:
        if i.keyword in ("COPY", "ADD"):
            *sources, _dest = [a for a in shlex.split(i.args) if not a.startswith("--")]
            for src in sources:
                assert (ROOT / src).exists(), f"Dockerfile:{i.line} copies {src}, not in the repo"
                assert f"!{src}" in ignore, (
                    f"Dockerfile.dockerignore leaves {src} out of the context"
                )
            copied += sources
    pip = [i for i in ins if i.keyword == "RUN" and "pip install" in i.args]
    assert pip, "the Dockerfile installs nothing"
    first_pip = ins.index(pip[0])
    assert any(i.keyword == "COPY" and "constraints.txt" in i.args for i in ins[:first_pip]), (
        "constraints.txt must be copied before the first pip install"
    )
    for i in pip:
        assert re.search(r"(-c|--constraint)[ =]constraints\.txt", i.args), (
            f"Dockerfile:{i.line}: every pip install uses -c constraints.txt"
        )
    targets = [
        (i, tok) for i in pip for tok in shlex.split(i.args) if tok == "." or tok.startswith(".[")
    ]
    assert targets, "no pip install of the project itself (`.` or `.[extra]`)"
    pyproject = (ROOT / "pyproject.toml").read_text()
    table = pyproject.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    extras = set(re.findall(r"^([A-Za-z0-9_-]+)\s*=", table, re.M))
    for i, tok in targets:
        wanted = set(tok.removeprefix(".[").removesuffix("]").split(",")) - {"."}
        assert wanted <= extras, f"Dockerfile:{i.line}: unknown extras {wanted - extras}"
    for needed in ("pyproject.toml", "sweeper", "trainers", "results", "search_spaces"):
        assert needed in copied, f"the image lacks {needed}"


# --- the compose file ---------------------------------------------------------------------


def published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host_ip, published_port) for each port entry, short or long syntax."""
    out = []
    for p in service.get("ports", []):
        if isinstance(p, dict):
            out.append((str(p.get("host_ip", "")), str(p.get("published", ""))))
        else:
            parts = str(p).split(":")
            host_ip = parts[0] if len(parts) == 3 else ""
            out.append((host_ip, parts[-2] if len(parts) >= 2 else ""))
    return out


def container_path(volume: str | dict[str, Any]) -> str:
    if isinstance(volume, dict):
        return str(volume["target"])
    # `${VAR:-default}` may hold a colon-free default; drop interpolations before splitting.
    plain = re.sub(r"\$\{[^}]*\}", "HOST", str(volume))
    return plain.split(":")[1]


def test_compose_starts_a_head_and_gpu_workers() -> None:
    data = compose()
    services = data["services"]
    assert {"head", "worker"} <= set(services)
    head, worker = services["head"], services["worker"]

    head_cmd = argv_commands(head["command"])
    assert head_cmd and head_cmd[0][:3] == ["ray", "start", "--head"], head_cmd
    opts = head_cmd[0]
    assert opts[opts.index("--dashboard-host") + 1] == "0.0.0.0"  # reachable through the port map
    port = opts[opts.index("--port") + 1]
    assert "--block" in opts  # the container lives as long as the node

    # The dashboard is published, and only on loopback; nothing else is published anywhere.
    assert ("127.0.0.1", "8265") in published(head)
    for name, svc in services.items():
        for host_ip, pub in published(svc):
            assert host_ip == "127.0.0.1", f"{name} publishes {pub} beyond localhost"

    (join,) = [c for c in argv_commands(worker["command"]) if c[:2] == ["ray", "start"]]
    assert join[join.index("--address") + 1] == f"head:{port}"
    assert "--block" in join and "--head" not in join
    script = worker["command"][2]
    assert "$" not in script.replace("$$", ""), "a lone $ would be interpolated by compose"
    assert "head" in worker.get("depends_on", {})

    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert int(worker["deploy"].get("replicas", 1)) >= 1

    for svc in (head, worker):
        build = svc["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    # Trials write checkpoints where the driver reads them: the store is at one path everywhere.
    mounts = [{container_path(v) for v in s.get("volumes", [])} for s in (head, worker)]
    assert "/sweeps" in mounts[0] & mounts[1]
    assert "--store /sweeps" in readme_section() or "--store /sweeps" in COMPOSE.read_text()


def test_readme_section_shows_the_cluster_and_the_dashboard() -> None:
    text = README.read_text()
    assert text.index("## Run on a cluster") < text.index("## The results store")
    section = readme_section()
    assert "docker compose -f docker/compose.yaml up" in section and "--scale worker=" in section
    assert "--address" in section and "RAY_ADDRESS" in section
    for page in ("*Jobs*", "*Actors*", "*Cluster*"):
        assert page in section
