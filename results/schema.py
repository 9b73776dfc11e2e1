"""Columns of the results store (shared/DESIGN.md) and the rules that keep parts compatible.

Two tables per sweep: `epochs` (one row per trial and evaluated epoch) and `trials` (one row
per trial state change). Base columns have fixed Arrow types; swept hyperparameters travel in
`p_<name>` columns. A sweep declares its `p_` columns when it starts (`declare_params`, kept
in the sweep's `schema.json`): numbers as doubles, categorical values as strings, every
column in every part, so any Parquet reader's defaults read the whole sweep. Without a
declaration (stores written before it, hand-made ones) each part's `p_` types are inferred
from its values and parts may differ; the store's own reader unifies them.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple

import pyarrow as pa

from results.errors import SchemaError

TIMESTAMP = pa.timestamp("us", tz="UTC")
STAGES = ("pretrain", "screen", "clean")
# DESIGN.md: stopped = by a scheduler; interrupted = by a signal to the sweep (resume re-runs it).
STATUSES = ("pending", "running", "completed", "failed", "diverged", "stopped", "interrupted")
PARAM_PREFIX = "p_"

# Declared `p_` column types by name (schema.json). Numbers are doubles whatever the values
# of one part are (an Optuna float that sampled 0 must not make an int64 part), categorical
# values strings; booleans only for hand-made stores (a search space refuses them).
PARAM_TYPES: Mapping[str, pa.DataType] = {
    "double": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
}

_SWEEP_ID = re.compile(r"[A-Za-z0-9._-]+")
_PARAM_NAME = re.compile(r"p_[A-Za-z0-9_.-]+")


class Column(NamedTuple):
    """One base column: its name, Arrow type, and whether every row must hold a value."""

    name: str
    type: pa.DataType
    required: bool


EPOCH_COLUMNS: tuple[Column, ...] = (
    Column("sweep_id", pa.string(), True),
    Column("stage", pa.string(), True),
    Column("trial_id", pa.string(), True),
    Column("method", pa.string(), True),
    # Pre-training objective of the trial's starting model ("mmcl" | "mmcl_ssl"); an addition
    # to DESIGN.md's list so cleaning rows can be grouped without joining the trials table.
    Column("objective", pa.string(), False),
    Column("epoch", pa.int64(), True),
    Column("clean_acc", pa.float64(), True),
    Column("clean_top5", pa.float64(), False),
    Column("asr", pa.float64(), True),
    Column("loss", pa.float64(), False),
    Column("loss_mmcl", pa.float64(), False),
    Column("loss_ssl", pa.float64(), False),
    Column("loss_reg", pa.float64(), False),
    Column("loss_cluster", pa.float64(), False),
    Column("lr", pa.float64(), False),
    Column("samples_seen", pa.int64(), False),
    Column("wall_s", pa.float64(), False),
    Column("checkpoint", pa.string(), False),
    # Training pairs skipped in the epoch (trainers.reporter.EpochRecord.skipped).
    Column("skipped", pa.int64(), False),
    # What accuracy and ASR were measured on (eval images, non-target images, classes): the
    # report's warnings about eval sets too small for the differences shown read them.
    Column("n_eval", pa.int64(), False),
    Column("n_asr_eval", pa.int64(), False),
    Column("n_classes", pa.int64(), False),
    # ASR's floor (an addition to DESIGN.md's list): % of the same non-target eval images,
    # without the trigger, predicted as the target. Null in stores written before it.
    Column("asr_untriggered", pa.float64(), False),
    Column("host", pa.string(), False),
    Column("written_at", TIMESTAMP, False),
)

TRIAL_COLUMNS: tuple[Column, ...] = (
    Column("sweep_id", pa.string(), True),
    Column("trial_id", pa.string(), True),
    Column("stage", pa.string(), True),
    Column("method", pa.string(), True),
    Column("objective", pa.string(), False),
    Column("status", pa.string(), True),
    Column("error", pa.string(), False),
    Column("params", pa.string(), False),
    Column("resources", pa.string(), False),
    Column("start_checkpoint", pa.string(), False),
    Column("start_checkpoint_sha256", pa.string(), False),
    # Pretrain trials: the epoch the paper's selection rule picked (also the screen trial
    # that was picked); null otherwise.
    Column("selected_epoch", pa.int64(), False),
    Column("started_at", TIMESTAMP, False),
    Column("ended_at", TIMESTAMP, False),
    Column("host", pa.string(), False),
    Column("written_at", TIMESTAMP, False),
)

EPOCH_KEY = ("sweep_id", "trial_id", "epoch")
TRIAL_KEY = ("sweep_id", "trial_id")
_TIMESTAMP_COLUMNS = {"written_at", "started_at", "ended_at"}
_JSON_COLUMNS = {"params", "resources"}


def validate_sweep_id(sweep_id: str) -> str:
    """Return `sweep_id` if it is safe as a directory name, else raise `SchemaError`."""
    if (
        not isinstance(sweep_id, str)
        or not _SWEEP_ID.fullmatch(sweep_id)
        or sweep_id in (".", "..")
        or ".." in sweep_id
    ):
        raise SchemaError(
            f"sweep id {sweep_id!r} is not usable as a directory name: use letters, digits, "
            "'.', '_' and '-' only (no path separators, no '..')"
        )
    return sweep_id


def is_param(name: str) -> bool:
    """True for a swept-hyperparameter column (`p_<name>`)."""
    return bool(_PARAM_NAME.fullmatch(name))


def _value_kinds(name: str, values: Iterable[Any]) -> set[str]:
    """The kinds ("bool", "int", "float", "str") among a swept hyperparameter's values."""
    kinds = set()
    for value in values:
        if value is None:
            continue
        if _is_bool(value):
            kinds.add("bool")
        elif isinstance(value, numbers.Integral):
            kinds.add("int")
        elif isinstance(value, numbers.Real):
            kinds.add("float")
        elif isinstance(value, str):
            kinds.add("str")
        else:
            raise SchemaError(
                f"column {name!r} holds a {type(value).__name__} ({value!r}): swept "
                "hyperparameters must be numbers, strings or booleans; store a list or "
                "mapping as a JSON string"
            )
    return kinds


def param_type(name: str, values: Iterable[Any]) -> pa.DataType:
    """Arrow type of a `p_` column from its Python values (bool, int, float or str)."""
    kinds = _value_kinds(name, values)
    if not kinds:
        return pa.null()
    if kinds <= {"int", "float"}:
        return pa.int64() if kinds == {"int"} else pa.float64()
    if len(kinds) == 1:
        return pa.bool_() if kinds == {"bool"} else pa.string()
    raise SchemaError(
        f"column {name!r} mixes {' and '.join(sorted(kinds))} values: give every trial the "
        "same kind of value for one hyperparameter"
    )


def _as_timestamp(value: Any, column: str, row: int) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        # Naive datetimes are taken as UTC: the store keeps every time in UTC.
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    raise SchemaError(f"row {row}: column {column!r} must be a datetime, got {value!r}")


def _as_json(value: Any, column: str, row: int) -> str | None:
    if value is None or isinstance(value, str):
        if isinstance(value, str):
            try:
                json.loads(value)
            except ValueError:
                raise SchemaError(
                    f"row {row}: column {column!r} is not valid JSON: {value[:80]!r}"
                ) from None
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError) as err:
        raise SchemaError(
            f"row {row}: column {column!r} cannot be written as JSON: {err}"
        ) from None


def _check_rows(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], table: str, params_ok: bool
) -> list[str]:
    """Validate row keys and required values; return the sorted `p_` column names."""
    known = {c.name for c in columns}
    params: set[str] = set()
    for i, row in enumerate(rows):
        for key in row:
            if key in known:
                continue
            if params_ok and is_param(key):
                params.add(key)
                continue
            hint = (
                "swept hyperparameters go in p_<name> columns"
                if params_ok
                else "hyperparameters go in the JSON 'params' column"
            )
            raise SchemaError(
                f"{table} row {i}: unknown column {key!r}; known columns: "
                f"{', '.join(sorted(known))}; {hint}"
            )
        for col in columns:
            if col.required and row.get(col.name) is None:
                raise SchemaError(f"{table} row {i}: required column {col.name!r} is missing")
        stage = row.get("stage")
        if stage not in STAGES:
            raise SchemaError(f"{table} row {i}: stage {stage!r} is not one of {', '.join(STAGES)}")
        status = row.get("status")
        if table == "trials" and status not in STATUSES:
            raise SchemaError(
                f"trials row {i}: status {status!r} is not one of {', '.join(STATUSES)}"
            )
    return sorted(params)


def _column_values(rows: Sequence[Mapping[str, Any]], col: Column) -> list[Any]:
    values = [row.get(col.name) for row in rows]
    if col.name in _TIMESTAMP_COLUMNS:
        return [_as_timestamp(v, col.name, i) for i, v in enumerate(values)]
    if col.name in _JSON_COLUMNS:
        return [_as_json(v, col.name, i) for i, v in enumerate(values)]
    return values


def rows_to_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    table: str,
    params: Mapping[str, str] | None = None,
) -> pa.Table:
    """Build a typed Arrow table from row dicts, raising `SchemaError` on any bad row.

    `params` (epochs only): the sweep's declared `p_` columns (`declare_params`). Every one
    is written, null where a row has no value, in its declared type; a row with a value in
    an undeclared `p_` column is refused. Without it, `p_` types are inferred from the rows.
    """
    found = _check_rows(rows, columns, table, params_ok=table == "epochs")
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    for col in columns:
        values = _column_values(rows, col)
        arrays.append(_to_array(values, col.name, col.type))
        fields.append(pa.field(col.name, col.type, nullable=not col.required))
    if params is not None and table == "epochs":
        _check_declared_rows(rows, found, params)
        for name in sorted(params):
            arrays.append(declared_array(name, [row.get(name) for row in rows], params[name]))
            fields.append(pa.field(name, PARAM_TYPES[params[name]]))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    for name in found:
        values = [row.get(name) for row in rows]
        typ = param_type(name, values)
        arrays.append(_to_array(values, name, typ))
        fields.append(pa.field(name, typ))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _check_declared_rows(
    rows: Sequence[Mapping[str, Any]], found: Sequence[str], params: Mapping[str, str]
) -> None:
    # An undeclared column that holds only nulls is dropped: it says nothing (e.g. a row
    # copied from another sweep, whose other columns were null here).
    for name in found:
        if name in params:
            continue
        i = next((i for i, row in enumerate(rows) if row.get(name) is not None), None)
        if i is not None:
            declared = ", ".join(sorted(params)) or "none"
            raise SchemaError(
                f"epochs row {i}: column {name!r} ({rows[i][name]!r}) is not one of the "
                f"sweep's declared parameter columns ({declared}, in its schema.json): "
                "declare every swept hyperparameter when the sweep starts "
                "(StoreWriter(..., params=...))"
            )


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def param_kind(name: str, values: Iterable[Any]) -> str:
    """The declared type of a swept hyperparameter from the values it can take.

    'double' for numbers (ints too), 'string' for strings, also mixed with numbers (the
    choices of a categorical), 'bool' for booleans only. No values at all: 'double'.
    """
    # Ints are numbers too: one double column, whatever a trial's value looked like.
    named = {"bool": "bool", "int": "double", "float": "double", "str": "string"}
    kinds = {named[k] for k in _value_kinds(name, values)}
    if "bool" in kinds and len(kinds) > 1:
        raise SchemaError(
            f"parameter {name!r} mixes booleans with {' and '.join(sorted(kinds - {'bool'}))}"
            " values: give it one kind of value"
        )
    if "string" in kinds:
        return "string"
    return kinds.pop() if kinds else "double"


def check_declared(params: Mapping[str, str], where: str) -> dict[str, str]:
    """`params` as a plain dict if every name is a `p_` column and every type is known."""
    if not isinstance(params, Mapping):
        raise SchemaError(f"{where}: expected a mapping of p_<name> columns to types")
    problems = [
        f"{name!r}: not a p_<name> column name"
        for name in params
        if not isinstance(name, str) or not is_param(name)
    ]
    problems += [
        f"{name!r}: type {typ!r} is not one of {', '.join(PARAM_TYPES)}"
        for name, typ in params.items()
        if typ not in PARAM_TYPES
    ]
    if problems:
        raise SchemaError(f"{where}: " + "; ".join(problems))
    return dict(params)


def declared_array(name: str, values: Sequence[Any], type_name: str) -> pa.Array:
    """A declared `p_` column's values in its type: numbers as doubles, and in a string
    column numbers as their text (a categorical with numeric choices)."""
    out: list[Any] = []
    for i, value in enumerate(values):
        if value is None:
            out.append(None)
        elif type_name == "double" and isinstance(value, numbers.Real) and not _is_bool(value):
            out.append(float(value))
        elif type_name == "string" and isinstance(value, str):
            out.append(value)
        elif type_name == "string" and isinstance(value, numbers.Real) and not _is_bool(value):
            out.append(str(value))
        elif type_name == "bool" and _is_bool(value):
            out.append(bool(value))
        else:
            raise SchemaError(
                f"epochs row {i}: column {name!r} is declared {type_name} (schema.json) but "
                f"holds {value!r} ({type(value).__name__}); give it a {type_name} value"
            )
    return _to_array(out, name, PARAM_TYPES[type_name])


def _to_array(values: list[Any], name: str, typ: pa.DataType) -> pa.Array:
    try:
        return pa.array(values, type=typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as err:
        raise SchemaError(f"column {name!r} expects {typ} values: {err}") from None


def merged_type(name: str, types: Sequence[pa.DataType]) -> pa.DataType:
    """One type for a non-base column seen with `types` in different part files."""
    kinds = {t for t in types if not pa.types.is_null(t)}
    if not kinds:
        return pa.null()
    if len(kinds) == 1:
        return kinds.pop()
    if all(pa.types.is_integer(t) for t in kinds):
        return pa.int64()
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in kinds):
        return pa.float64()
    if all(pa.types.is_string(t) or pa.types.is_large_string(t) for t in kinds):
        return pa.string()
    raise SchemaError(
        f"column {name!r} has types {', '.join(sorted(map(str, kinds)))} in different part "
        "files: a hyperparameter must keep one kind of value (number, string or bool)"
    )
