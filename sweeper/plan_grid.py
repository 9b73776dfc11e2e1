"""Grid stages (screen, clean): every point of a grid, planned in time linear in its size.

First each value of each grid parameter is checked once against its TrialConfig field
(`clean.grid.lr[3]: must be > 0`); a point with a bad value is not planned. Then each point's
config is built from the layers its (start model, method) group shares and its own values,
with `SectionCheck` validating each distinct section once: a grid of 200,000 learning rates
validates 200,000 `optim` sections and one of everything else. A point whose config still
fails (a rule across fields, such as every loss weight 0) is checked again layer by layer,
so that each problem is blamed on the field that set it, as a one-trial check blames it.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from sweeper import registry
from sweeper.grid_values import GridValue, Sets, grid_values
from sweeper.overrides import Layer, merge_layers, nested
from sweeper.plan_types import TrialPlan, trial_id
from sweeper.spec_numbers import number_problems
from sweeper.spec_rules import start_names
from sweeper.trial_configs import (
    SCALING_INPUTS,
    SECTIONS,
    SectionCheck,
    apply_changes,
    blame,
    field_value,
    scaling_changes,
)
from trainers.config import TrialConfig

if TYPE_CHECKING:
    from sweeper.planner import Planner

# Points checked layer by layer once their config fails, per stage; past this the rest are
# counted in one line (their problems repeat the ones shown).
_MAX_SLOW_CHECKS = 20
# The config fields the embedded scaling may change (their source is recorded for `launch`).
_SCALED = ("optim.epochs", "data.batch_size", "optim.warmup_steps", "loss.n_clusters")

_ORDER = (*SECTIONS, "")
# Sections (and "" the top-level fields) with no validator across their fields: valid when
# each field is.
_MODELS: dict[str, type[BaseModel]] = {**SECTIONS, "": TrialConfig}
_FIELDWISE = frozenset(
    name
    for name, model in _MODELS.items()
    if not model.__pydantic_decorators__.model_validators
    and not model.__pydantic_decorators__.field_validators
)


@dataclass
class _Group:
    """What the points from one start model with one method share."""

    method: str
    objective: str | None
    layers: list[Layer]
    raw: dict[str, Any]
    sources: dict[str, str]
    # Its sections validated (`_template`), and the ones that fail unless a grid value
    # replaces them.
    template: dict[str, Any] | None = None
    failing: set[str] = field(default_factory=set)
    failed: bool = False
    changes: list[tuple[str, str, Any]] | None = None  # its scaling, when no grid value feeds it
    target_checked: bool = False


def grid_trials(planner: Planner, stage: str) -> list[TrialPlan]:
    """The trials of a screen or clean grid, every problem reported to the planner."""
    return _Grid(planner, stage).trials()


class _Grid:
    def __init__(self, planner: Planner, stage: str) -> None:
        self.p = planner
        self.stage = stage
        section = planner.spec.screen if stage == "screen" else planner.spec.clean
        assert section is not None and section.grid is not None
        self.repeats = getattr(section, "repeats", 1)
        self.values = {
            name: grid_values(stage, name, values, planner.report)
            for name, values in section.grid.items()
        }
        self.check = SectionCheck()
        self.groups: dict[tuple[str | None, int | None], _Group] = {}
        self.poisons: dict[tuple[str | None, int], Sets | None] = {}
        self.slow_checked: set[tuple[str, ...]] = set()
        self.uncounted = 0
        paths = {name: registry.PARAMS[name].path for name in self.values}
        # The point index of the value that sets each config field a grid parameter sets.
        self.grid_paths = {path: i for i, path in enumerate(paths.values()) if path is not None}
        # Config fields that every point sets (a patch's value there never runs).
        self.replaced = {tuple(path.split(".")) for path in self.grid_paths}
        if "base_loss" in paths:
            self.replaced |= {("loss", "mmcl_weight"), ("loss", "ssl_weight")}
        if "clean_poisons" in paths:
            self.replaced |= {("poison", "kind"), ("poison", "amount")}
        # A method value changes the group, and so its scaling, but not within the group.
        fed = set(self.grid_paths) & set(SCALING_INPUTS)
        self.scaling_varies = bool(fed) or "clean_poisons" in paths

    # ---- every point ----------------------------------------------------------------------

    def trials(self) -> list[TrialPlan]:
        out: list[TrialPlan] = []
        names = list(self.values)
        method_at = names.index("method") if "method" in names else None
        every_ok = all(v.ok for values in self.values.values() for v in values)
        first: tuple[str | None, tuple[GridValue, ...]] | None = None
        with _gc_paused():
            for start in start_names(self.p.spec):
                seen: Counter[tuple[str, ...]] = Counter()
                for point in itertools.product(*self.values.values()):
                    if not every_ok and not all(v.ok for v in point):
                        first = first or (start, point)
                        continue
                    group = self._group(
                        start, point[method_at] if method_at is not None else None, point
                    )
                    if group.failed:
                        continue
                    key = tuple(v.key for v in point)
                    for _ in range(self.repeats):
                        occurrence = seen[key]
                        seen[key] += 1
                        trial = self._trial(group, start, names, point, occurrence)
                        if trial is not None:
                            out.append(trial)
        if not out and not self.groups and first is not None:
            # Every point has a bad value: check one anyway for its other problems.
            start, point = first
            chosen = point[method_at] if method_at is not None else None
            self._slow(self._group(start, chosen, point), start, point, 0)
        if self.uncounted:
            self.p.report(
                f"{self.stage}.grid",
                f"{self.uncounted:,} more trial configs fail as the ones above do",
            )
        return out

    def _trial(
        self,
        group: _Group,
        start: str | None,
        names: list[str],
        point: tuple[GridValue, ...],
        occurrence: int,
    ) -> TrialPlan | None:
        sets = self._sets(start, point)
        config = self._config(group, sets) if sets is not None else None
        if config is None:
            # A section every point of the group shares fails: one check says why.
            shared = bool(group.failing) and not any(
                s in group.failing for v in point for s, _, _ in v.sets
            )
            config = self._slow(group, start, point, occurrence, force=shared)
            group.failed = shared
            if config is None:
                return None
        elif occurrence:
            # Repeated values run as repeated trials, each with its own seed.
            config["seed"] = int(config["seed"]) + occurrence
        if self.stage == "clean" and self.p.embedded:
            self._scale(group, config, point)
        if not group.target_checked:
            group.target_checked = True
            self.p.check_target(self.stage, start, config, group.layers)
        params = {name: v.norm for name, v in zip(names, point, strict=True)}
        tid = trial_id(self.stage, start, params, occurrence)
        return TrialPlan(
            tid, self.stage, self.stage, group.method, group.objective, params, config, start
        )

    def _scale(self, group: _Group, config: dict[str, Any], point: tuple[GridValue, ...]) -> None:
        """The embedded scaling; worked out once per group when no grid value feeds it."""
        if self.scaling_varies or group.changes is None:
            changes = scaling_changes(config, self.p.rules["clean"])
            for label, path, value in changes:
                at = self.grid_paths.get(path)
                source = point[at].label if at is not None else group.sources[path]
                section, _, name = path.partition(".")
                self.p.rescales.add(source, config[section][name], value, label)
            group.changes = changes
        apply_changes(config, group.changes)

    def _group(
        self, start: str | None, chosen: GridValue | None, point: tuple[GridValue, ...]
    ) -> _Group:
        """The group of a point from `start` whose method value is `chosen` (None: the
        stage's own method)."""
        key = (start, chosen.at if chosen is not None else None)
        group = self.groups.get(key)
        if group is not None:
            return group
        if self.stage == "screen":
            method, where = "shrink_perturb", "clean.method"
        elif chosen is not None:
            method, where = str(chosen.raw), chosen.label
        else:
            assert self.p.spec.clean is not None
            method, where = self.p.spec.clean.method_name, "clean.method"
        layers = self.p.start_layers(self.stage, start, method, where)
        raw = merge_layers(layers)
        sources = {path: blame(layers, tuple(path.split("."))) for path in _SCALED}
        group = _Group(method, self.p.objective(start), layers, raw, sources)
        self.groups[key] = group
        # A boolean or non-finite number in a trial patch, where no grid value replaces it.
        bad = [loc for loc, _ in number_problems(TrialConfig, raw) if loc[:2] not in self.replaced]
        group.failed = bool(bad)
        if group.failed:
            self._slow(group, start, point, 0, force=True)
        return group

    def _sets(self, start: str | None, point: tuple[GridValue, ...]) -> Sets | None:
        """What the point's values set; None when a value cannot be applied to this start."""
        if len(point) == 1 and point[0].name != "clean_poisons":
            return point[0].sets
        out: list[tuple[str, str, Any]] = []
        for v in point:
            if v.name == "clean_poisons":
                poison = self._poison(start, v)
                if poison is None:
                    return None
                out += poison
            else:
                out += v.sets
        return tuple(out)

    def _poison(self, start: str | None, v: GridValue) -> Sets | None:
        key = (start, v.at)
        if key not in self.poisons:
            layer = self._poison_layer(start, v)
            sets: list[tuple[str, str, Any]] = []
            for k, raw in (layer.values["poison"] if layer is not None else {}).items():
                value, problem = field_value(f"poison.{k}", raw)
                if problem is not None:
                    layer = None
                    break
                sets.append(("poison", k, value))
            self.poisons[key] = tuple(sets) if layer is not None else None
        return self.poisons[key]

    def _poison_layer(self, start: str | None, v: GridValue) -> Layer | None:
        count = v.raw
        if start is None:
            assert self.p.spec.start is not None
            poison: dict[str, Any] = {"kind": self.p.spec.start.trigger}
        elif start not in self.p.job_configs:
            return None  # the pre-training config itself failed: reported already
        else:
            job = self.p.job_configs[start].get("poison", {})
            poison = {k: job.get(k) for k in ("kind", "target", "patch_size", "blend_alpha")}
            if poison["kind"] in (None, "none"):
                self.p.report(v.label, f"start model {start!r} was pre-trained without a trigger")
                return None
        if count == 0:
            poison = {"kind": "none"}
        return Layer(v.label, {"poison": {**poison, "amount": count}})

    def _config(self, group: _Group, sets: Sets) -> dict[str, Any] | None:
        """The point's validated config (its own dicts), or None when a section fails."""
        template = self._template(group)
        touched: dict[str, dict[str, Any]] = {}
        for section, name, value in sets:
            raw = touched.get(section)
            if raw is None:
                if section in _FIELDWISE and section not in group.failing:
                    raw = touched[section] = {}  # merged over the group's checked section
                else:
                    base = group.raw.get(section) if section else _top(group.raw)
                    raw = touched[section] = dict(base) if isinstance(base, dict) else {}
            raw[name] = value
        fills: tuple[str, ...] = ()
        if self.stage == "clean":
            loss = touched.get("loss", group.raw.get("loss"))
            fill = self.p.teacher_fill(self.stage, loss)
            if fill:
                touched["loss"] = {**(loss if isinstance(loss, dict) else {}), **fill}
                fills = ("loss",)
        if not group.failing <= touched.keys():
            return None  # a section no value of the point replaces fails
        # Sections are shared with the other points that have them (the plan's configs are
        # read, never changed in place: `apply_changes` copies what it changes); 200,000
        # points then hold 200,000 `optim` sections and one of each other.
        out = dict(template)
        for section, raw in touched.items():
            checked: dict[str, Any] | None
            if section in _FIELDWISE and section not in group.failing and section not in fills:
                # Each value was checked against its field, the rest of the section with the
                # group, and no rule spans the section's fields: nothing left to check.
                checked = {**template[section], **raw} if section else raw
            else:
                checked = self.check.section(section, raw)
            if checked is None:
                return None
            if section:
                out[section] = checked
            else:
                out.update(checked)
        return out

    def _template(self, group: _Group) -> dict[str, Any]:
        """The group's sections, each validated once (a failing one left at its default)."""
        if group.template is None:
            group.template = {}
            for section in _ORDER:
                raw = group.raw.get(section, {}) if section else _top(group.raw)
                checked = self.check.section(section, raw)
                if checked is None:
                    group.failing.add(section)
                    checked = self.check.section(section, {})
                assert checked is not None  # the defaults validate
                if section:
                    group.template[section] = checked
                else:
                    group.template.update(checked)
        return group.template

    def _slow(
        self,
        group: _Group,
        start: str | None,
        point: tuple[GridValue, ...],
        occurrence: int,
        force: bool = False,
    ) -> dict[str, Any] | None:
        """Check one point layer by layer, as the whole-config check blames its problems."""
        # The same values from another start model, or repeated, fail the same way (and the
        # message, which names the values, would be the same line).
        values = tuple(v.key for v in point)
        if values in self.slow_checked and not force:
            return None
        if len(self.slow_checked) >= _MAX_SLOW_CHECKS and not force:
            self.uncounted += 1
            return None
        self.slow_checked.add(values)
        layers = [*group.layers, *self._layers(start, point)]
        fill = self.p.teacher_fill(self.stage, merge_layers(layers).get("loss", {}))
        if fill is not None:
            layers.append(self.p.teacher_layer(fill))
        if occurrence:
            seed = merge_layers(layers).get("seed", 0)
            if isinstance(seed, int) and not isinstance(seed, bool):
                label = f"{self.stage}.grid (occurrence {occurrence})"
                layers.append(Layer(label, {"seed": seed + occurrence}))
        # A problem of the whole group (`force`) is no one trial's: its message names none.
        config, _ = self.p.check(layers, {} if force else {v.name: v.raw for v in point})
        return config

    def _layers(self, start: str | None, point: tuple[GridValue, ...]) -> list[Layer]:
        layers = []
        for v in point:
            param = registry.PARAMS[v.name]
            if v.name == "base_loss":
                layers.append(Layer(v.label, {"loss": dict(registry.BASE_LOSSES[str(v.raw)])}))
            elif v.name == "clean_poisons":
                layer = self._poison_layer(start, v)
                layers += [layer] if layer is not None else []
            elif param.path is not None:
                layers.append(Layer(v.label, nested(param.path, v.raw)))
        return layers


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a grid is expanded: the planner allocates
    hundreds of thousands of small dicts and none of them in a cycle, so each collection
    would only walk them again (a quarter of the time of a 200,000-point grid)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _top(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level fields of a raw config (and any unknown top-level keys)."""
    return {k: v for k, v in raw.items() if k not in SECTIONS}
