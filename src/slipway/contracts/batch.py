"""Checking a whole data set against a contract, column by column.

The verdict and the reason for every value are those of ``check.check_value`` (a row
that ``check_rows`` refuses is refused here, for the same reasons), but numeric columns
are checked with numpy and text columns once per distinct value::

    >>> report = validate(df, contract)
    >>> report.ok, report.invalid_rows
    (False, 3)
    >>> report.fields["age"].reasons
    {'below min 18': 2, 'null not allowed': 1}

Inputs: a pandas DataFrame, a pyarrow Table, a dict of columns or a list of row dicts
(see ``_columns`` for how NaN and native datetimes are read).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slipway.contracts._columns import Coded, Column, Numbers, Objects, to_table
from slipway.contracts.check import check_value
from slipway.contracts.schema import Contract, FieldRule

MAX_EXAMPLES = 5
PII_MASK = "<pii>"
_JSON_KIND = {"b": "bool", "i": "int", "u": "int", "f": "float"}

__all__ = ["FieldReport", "ValidationReport", "validate"]


@dataclass(frozen=True)
class FieldReport:
    name: str
    violations: int
    reasons: dict[str, int]  # reason -> rows, most frequent first
    examples: list[dict[str, Any]]  # up to 5: {"row", "value", "reason"}; pii masked
    in_contract: bool = True  # False for a column the contract does not know

    def to_dict(self) -> dict[str, Any]:
        return {
            "violations": self.violations,
            "reasons": dict(self.reasons),
            "examples": [{**e, "value": _jsonable(e["value"])} for e in self.examples],
            "in_contract": self.in_contract,
        }


@dataclass(frozen=True)
class ValidationReport:
    rows: int
    invalid_rows: int
    fields: dict[str, FieldReport]  # every contract field, then unknown columns
    missing_columns: tuple[str, ...]  # contract fields no row has
    unknown_columns: tuple[str, ...]  # columns the contract does not know
    not_objects: int = 0  # rows of a row list that are not dicts
    # Per field: one reason code per row (0 = fine) and the reasons they stand for.
    _codes: dict[str, tuple[np.ndarray, tuple[str, ...]]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _invalid: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=bool), repr=False, compare=False
    )
    _not_objects: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.invalid_rows == 0

    @property
    def invalid_indices(self) -> np.ndarray:
        """Row numbers with at least one violation, ascending."""
        return np.flatnonzero(self._invalid)

    @property
    def valid_mask(self) -> np.ndarray:
        return ~self._invalid

    def errors(self, limit: int | None = None) -> dict[int, list[dict[str, Any]]]:
        """Per invalid row, its errors in ``CheckResult.errors`` form (first ``limit`` rows)."""
        rows = self.invalid_indices[:limit].tolist()
        out: dict[int, list[dict[str, Any]]] = {i: [] for i in rows}
        if self._not_objects is not None:
            for i in rows:
                if self._not_objects[i]:
                    out[i].append({"field": None, "reason": "row must be an object"})
        for name, (codes, reasons) in self._codes.items():
            for i in rows:
                code = codes[i]
                if code:
                    out[i].append({"field": name, "reason": reasons[code - 1]})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "invalid_rows": self.invalid_rows,
            "missing_columns": list(self.missing_columns),
            "unknown_columns": list(self.unknown_columns),
            "not_objects": self.not_objects,
            "fields": {name: f.to_dict() for name, f in self.fields.items()},
        }

    def summary_table(self) -> list[dict[str, Any]]:
        """One row per field for ``slipway contract check``: counts, reasons, examples."""
        out = []
        for f in self.fields.values():
            out.append(
                {
                    "field": f.name if f.in_contract else f"{f.name} (unknown)",
                    "violations": f.violations,
                    "reasons": "; ".join(f"{r}: {n}" for r, n in f.reasons.items()),
                    "examples": "; ".join(
                        f"row {e['row']}: {_short(e['value'])}" for e in f.examples
                    ),
                }
            )
        return out


def validate(data: Any, contract: Contract) -> ValidationReport:
    """Check every value of ``data`` against ``contract``; see the module docstring."""
    table = to_table(data)
    n = table.rows
    outside = table.not_objects  # rows that are not dicts get no field errors
    invalid = np.zeros(n, dtype=bool) if outside is None else outside.copy()
    fields: dict[str, FieldReport] = {}
    codes_by_field: dict[str, tuple[np.ndarray, tuple[str, ...]]] = {}
    missing = []

    def record(name: str, out: _Reasons, column: Column | None, pii: bool, known: bool) -> None:
        codes = out.codes
        if outside is not None:
            codes[outside] = 0
        if not out.reasons:
            bad = np.zeros(0, dtype=np.intp)
        elif out.rows is not None:
            bad = out.rows[codes[out.rows] != 0]
        else:
            bad = np.flatnonzero(codes != 0)
        counts = np.bincount(codes[bad], minlength=len(out.reasons) + 1)[1:]
        violations = len(bad)
        examples = [
            {
                "row": int(i),
                "value": PII_MASK if pii else (None if column is None else column.value(i)),
                "reason": out.reasons[codes[i] - 1],
            }
            for i in bad[:MAX_EXAMPLES]
        ]
        ranked = sorted(
            ((r, int(c)) for r, c in zip(out.reasons, counts, strict=True) if c),
            key=lambda rc: -rc[1],
        )
        fields[name] = FieldReport(name, violations, dict(ranked), examples, known)
        if violations:
            invalid[bad] = True
            codes_by_field[name] = (codes, tuple(out.reasons))

    rules = contract.inputs
    columns = [table.columns.get(rule.name) for rule in rules]
    outs = _check_columns(rules, columns, n)
    for rule, column, out in zip(rules, columns, outs, strict=True):
        if column is None:
            missing.append(rule.name)
            if not rule.nullable:
                out.set(np.ones(n, dtype=bool), "missing")
        else:
            absent = table.absent.get(rule.name)
            if absent is not None:
                out.codes[absent] = 0
                if not rule.nullable:
                    out.set(absent, "missing")
        record(rule.name, out, column, rule.pii, True)

    names = set(contract.names)
    unknown = [name for name in table.columns if name not in names]
    for name in unknown:
        out = _Reasons(n)
        present = np.ones(n, dtype=bool)
        if name in table.absent:
            present &= ~table.absent[name]
        out.set(present, "unknown field")
        record(name, out, table.columns[name], False, False)

    return ValidationReport(
        rows=n,
        invalid_rows=int(invalid.sum()),
        fields=fields,
        missing_columns=tuple(missing),
        unknown_columns=tuple(unknown),
        not_objects=0 if outside is None else int(outside.sum()),
        _codes=codes_by_field,
        _invalid=invalid,
        _not_objects=outside,
    )


class _Reasons:
    """One reason code per row (0 = fine), and the reasons the codes stand for."""

    def __init__(self, n: int) -> None:
        self.codes = np.zeros(n, dtype=np.int16)
        self.reasons: list[str] = []
        # When known: the only rows (ascending) whose code may be non-zero.
        self.rows: np.ndarray | None = np.zeros(0, dtype=np.intp)

    def code(self, reason: str) -> int:
        try:
            return self.reasons.index(reason) + 1
        except ValueError:
            self.reasons.append(reason)
            return len(self.reasons)

    def set(self, mask: np.ndarray, reason: str) -> None:
        if mask.any():
            self.codes[mask] = self.code(reason)
            self.rows = None

    def refuse(self, pending: np.ndarray, bad: np.ndarray, reason: str) -> np.ndarray:
        """Mark ``bad`` rows (among ``pending``) and return the rows still to check."""
        bad = pending & bad
        self.set(bad, reason)
        still: np.ndarray = pending & ~bad
        return still


# Above this many cells, columns are checked on a few threads: arrow's string kernels and
# numpy release the GIL, so the text columns and the numeric ones overlap.
_PARALLEL_CELLS = 2_000_000


def _check_columns(
    rules: Sequence[FieldRule], columns: list[Column | None], n: int
) -> list[_Reasons]:
    """Each rule's reasons (none yet for a missing column), checked in parallel if large."""
    outs = [_Reasons(n) for _ in rules]
    jobs = [
        (rule, column, out)
        for rule, column, out in zip(rules, columns, outs, strict=True)
        if column is not None
    ]
    workers = min(4, os.cpu_count() or 1, len(jobs))
    # A column checked twice (a contract built with a repeated name) stays on one thread:
    # its encoding is made once, on first use.
    shared = len({id(job[1]) for job in jobs}) < len(jobs)
    if n * len(jobs) < _PARALLEL_CELLS or workers < 2 or shared:
        for job in jobs:
            _check_column(*job)
        return outs
    # Slowest first (text, then Python objects, then numbers), so the numbers fill the gaps.
    jobs.sort(key=lambda job: _COST.get(type(job[1]), 0), reverse=True)
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(_check_column, *job) for job in jobs]:
            future.result()
    return outs


_COST = {Coded: 2, Objects: 1, Numbers: 0}


def _check_column(rule: FieldRule, column: Column, out: _Reasons) -> None:
    if isinstance(column, Numbers):
        _check_numbers(rule, column, out)
    elif isinstance(column, Coded):
        _check_coded(rule, column, out)
    else:
        _check_objects(rule, column, out)


def _check_numbers(rule: FieldRule, column: Numbers, out: _Reasons) -> None:
    # A quick pass finds the rows that may be refused (a superset); the full check then
    # runs on those rows only, so the reasons (and the order they are found in) are the same.
    rows = _number_suspects(rule, column)
    if rows is None:
        out.rows = None
        _check_numbers_fully(rule, column, out)
        return
    if not len(rows):
        return
    nulls = column.nulls_at(rows)
    sub = _Reasons(len(rows))
    sub.reasons = out.reasons  # shared: codes mean the same reasons
    _check_numbers_fully(rule, Numbers(column.values[rows], nulls), sub)
    out.codes[rows] = sub.codes
    out.rows = rows


_CHUNK = 1 << 16  # rows per step of the quick pass: the step's data stays in cache


def _number_suspects(rule: FieldRule, column: Numbers) -> np.ndarray | None:
    """Rows (ascending) that may break a range rule; None: no quick pass for this rule."""
    v, kind = column.values, column.values.dtype.kind
    if rule.type not in ("int", "float") or kind not in "iuf" or rule.allowed is not None:
        return None
    # NaN fails every quick pass on floats, so NaN nulls not yet found need not be.
    nulls = None if column.nan_pending else column.nulls
    lo, hi = rule.min, rule.max
    if not all(type(b) in (int, float) and math.isfinite(b) for b in (lo, hi) if b is not None):
        return None
    fractional = kind == "f" and rule.type == "int"
    found = []
    step = max(1, min(_CHUNK, len(v)))
    mask, tmp = np.empty(step, dtype=bool), np.empty(step, dtype=bool)
    with np.errstate(invalid="ignore"):
        for start in range(0, len(v), step):
            part = v[start : start + step]
            m, t = mask[: len(part)], tmp[: len(part)]
            if lo is not None and hi is not None:
                # False for NaN and infinities too, the bounds being finite.
                np.greater_equal(part, lo, out=m)
                np.less_equal(part, hi, out=t)
                np.logical_and(m, t, out=m)
                np.logical_not(m, out=m)
            else:
                if kind == "f":
                    np.isfinite(part, out=m)
                    np.logical_not(m, out=m)
                else:
                    m[:] = False
                if lo is not None:
                    np.less(part, lo, out=t)
                    m |= t
                if hi is not None:
                    np.greater(part, hi, out=t)
                    m |= t
            if fractional:
                np.not_equal(part, np.floor(part), out=t)
                m |= t
            if nulls is not None:
                m |= nulls[start : start + step]
            hits = np.flatnonzero(m)
            if len(hits):
                found.append(hits + start)
    return np.concatenate(found) if found else np.zeros(0, dtype=np.intp)


def _check_numbers_fully(rule: FieldRule, column: Numbers, out: _Reasons) -> None:
    v, nulls = column.values, column.nulls
    pending = np.ones(len(v), dtype=bool)
    if nulls is not None:
        if not rule.nullable:
            out.set(nulls, "null not allowed")
        pending = ~nulls
    kind = v.dtype.kind
    got = _JSON_KIND[kind]
    if rule.type in ("int", "float"):
        if kind == "b":
            out.set(pending, f"expected {rule.type}, got bool")
            return
        if kind == "f":
            pending = out.refuse(pending, ~np.isfinite(v), "must be finite")
            if rule.type == "int":
                with np.errstate(invalid="ignore"):
                    fractional = v != np.floor(v)
                pending = out.refuse(pending, fractional, "expected int, got a fractional number")
        with np.errstate(invalid="ignore"):
            if rule.min is not None:
                pending = out.refuse(pending, v < rule.min, f"below min {rule.min:g}")
            if rule.max is not None:
                pending = out.refuse(pending, v > rule.max, f"above max {rule.max:g}")
        if rule.allowed is not None:
            as_type = int if rule.type == "int" else float
            _check_allowed(rule, v, pending, as_type, out)
    elif rule.type == "bool":
        if kind != "b":
            out.set(pending, f"expected bool, got {got}")
        elif rule.allowed is not None:
            _check_allowed(rule, v, pending, bool, out)
    else:
        out.set(pending, f"expected {rule.type}, got {got}")


def _check_allowed(
    rule: FieldRule, v: np.ndarray, pending: np.ndarray, as_type: Any, out: _Reasons
) -> None:
    # Python's `in` on each distinct value: the exact semantics of check_value.
    rows = np.flatnonzero(pending)
    uniques, inverse = np.unique(v[rows], return_inverse=True)
    allowed = rule.allowed or ()
    refused = np.array([as_type(u) not in allowed for u in uniques.tolist()], dtype=bool)
    bad = np.zeros(len(v), dtype=bool)
    bad[rows[refused[inverse.reshape(-1)]]] = True
    out.set(bad, "not one of the allowed values")


def _check_coded(rule: FieldRule, column: Coded, out: _Reasons) -> None:
    if column.arrow is not None and not rule.pattern and _check_strings(rule, column.arrow, out):
        return
    # One check per distinct value; the extra last slot is the code of null (index -1).
    found = None if column.arrow is None else _arrow_suspects(rule, column.encoded_dictionary())
    if found is None:
        suspects: Any = _suspects(rule, column.uniques)
        values = [column.uniques[j] for j in suspects]
    else:
        suspects = found.tolist()
        values = column.encoded_dictionary().take(found).to_pylist()
    lookup = np.zeros(len(column.uniques if found is None else column.dictionary) + 1, np.int16)
    for j, value in zip(suspects, values, strict=True):
        ok, reason = check_value(rule, value)
        if not ok:
            lookup[j] = out.code(reason)
    if not rule.nullable:
        lookup[-1] = out.code("null not allowed")
    out.codes[:] = lookup[column.codes]
    out.rows = None


def _string_suspects(rule: FieldRule, arr: Any) -> Any:
    """An arrow mask of the strings check_value may refuse (None: it refuses none), or
    False when arrow cannot tell for this rule."""
    if rule.type not in ("string", "category"):
        return False
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    masks = []
    if rule.allowed is not None:
        if not all(a is None or type(a) in (str, int, float, bool) for a in rule.allowed):
            return False  # a str can only equal a str among these
        allowed = pa.array([a for a in rule.allowed if type(a) is str], type=arr.type)
        masks.append(pc.invert(pc.is_in(arr, value_set=allowed)))
    if rule.max_length is not None:
        masks.append(pc.greater(pc.utf8_length(arr), rule.max_length))
    if rule.pattern:
        re2 = _re2_pattern(rule.pattern)
        if re2 is None:
            return False
        try:
            masks.append(pc.invert(pc.match_substring_regex(arr, re2)))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False
    if not masks:
        return None
    mask = masks[0]
    for m in masks[1:]:
        mask = pc.or_(mask, m)
    return pc.fill_null(mask, False) if mask.null_count else mask


def _arrow_suspects(rule: FieldRule, dictionary: Any) -> np.ndarray | None:
    """Positions in an arrow dictionary of strings that check_value may refuse."""
    import pyarrow.compute as pc

    mask = _string_suspects(rule, dictionary)
    if mask is False:
        return None
    if mask is None:
        return np.zeros(0, dtype=np.intp)
    found: np.ndarray = pc.indices_nonzero(mask).to_numpy().astype(np.intp)
    return found


# Regex syntax that Python's re and RE2 (arrow) read the same way: ASCII literals, escaped
# punctuation, non-negated classes of those, counted repeats, groups and alternation.
_RE2_SAFE = re.compile(
    r"(?:[A-Za-z0-9_@:,/=#%&!~'\"<> -]"
    r"|\\[.\-+*?()\[\]{}|^$/\\]"
    r"|\[(?:[A-Za-z0-9](?:-[A-Za-z0-9])?|[_@.:,/=#%&!~'\" ]|\\[\-\]\[\\.^])+\]"
    r"|\{[0-9]{1,3}(?:,[0-9]{0,3})?\}"
    r"|[?*+|()])*"
)


def _re2_pattern(pattern: str) -> str | None:
    """The RE2 pattern that fully matches what ``re.fullmatch(pattern)`` does, or None."""
    body = pattern[1:] if pattern.startswith("^") else pattern
    if body.endswith("$"):
        if body.endswith("\\$"):
            return None
        body = body[:-1]
    if "(?" in body.replace("(?:", "") or not _RE2_SAFE.fullmatch(body):
        return None
    return f"^(?:{body})$"


def _check_strings(rule: FieldRule, arr: Any, out: _Reasons) -> bool:
    """Check an arrow string array without encoding it: arrow finds the rows that may be
    refused, check_value gives their reasons. False: not for this rule, nothing done."""
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = _string_suspects(rule, arr)
    if mask is False:
        return False
    # The first refused value in row order gets the first code, as in _check_coded.
    if mask is not None:
        rows = pc.indices_nonzero(mask).to_numpy().astype(np.intp)
        if len(rows):
            values = arr.take(pa.array(rows)).to_pylist()
            codes: dict[Any, int] = {None: 0}  # nulls: below
            for value in values:
                if value not in codes:
                    ok, reason = check_value(rule, value)
                    codes[value] = 0 if ok else out.code(reason)
            out.codes[rows] = [codes[v] for v in values]
            out.rows = rows
    if not rule.nullable and arr.null_count:
        out.set(arr.is_null().to_numpy(zero_copy_only=False), "null not allowed")
    return True


def _suspects(rule: FieldRule, uniques: list[Any]) -> range | list[int]:
    """Positions of the values check_value may refuse; for text rules and str values, a
    quick pass that leaves the (few) refused values to check_value for the reason."""
    if rule.type not in ("string", "category") or not all(type(u) is str for u in uniques):
        return range(len(uniques))
    allowed: Any = rule.allowed
    if allowed is not None:
        try:
            allowed = frozenset(allowed)
        except TypeError:
            return range(len(uniques))
    limit, pattern = rule.max_length, rule.compiled_pattern
    return [
        j
        for j, u in enumerate(uniques)
        if (allowed is not None and u not in allowed)
        or (limit is not None and len(u) > limit)
        or (pattern is not None and not pattern.fullmatch(u))
    ]


def _check_objects(rule: FieldRule, column: Objects, out: _Reasons) -> None:
    cache: dict[tuple[type, Any], int] = {}
    codes = out.codes
    out.rows = None
    for i, value in enumerate(column.values):
        try:
            key = (type(value), value)
            code = cache.get(key)
        except TypeError:  # unhashable (lists): check it every time
            key, code = None, None
        if code is None:
            ok, reason = check_value(rule, value)
            code = 0 if ok else out.code(reason)
            if key is not None:
                cache[key] = code
        if code:
            codes[i] = code


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return str(value)


def _short(value: Any, width: int = 40) -> str:
    text = value if value == PII_MASK else repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"
