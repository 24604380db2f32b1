"""PromQL binary operators, with Prometheus's vector matching (on/ignoring, group_left/right)."""

from __future__ import annotations

import numpy as np

from pantau.model import METRIC_NAME, Labels
from pantau.query.promql.values import ExecutionError, PromQLError, Scalar, String, Vector, drop_name

ARITHMETIC = {"+", "-", "*", "/", "%", "^", "atan2"}
COMPARISON = {"==", "!=", ">", "<", ">=", "<="}
SETS = {"and", "or", "unless"}


def _arith(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return np.true_divide(a, b)
        if op == "%":
            return np.fmod(a, b)
        if op == "^":
            return np.power(a, b)
        return np.arctan2(a, b)


def _compare(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return {"==": np.equal, "!=": np.not_equal, ">": np.greater, "<": np.less,
                ">=": np.greater_equal, "<=": np.less_equal}[op](a, b)


def negate(value):
    if isinstance(value, Scalar):
        return Scalar(-value.values)
    if isinstance(value, Vector):
        return Vector([drop_name(lab) for lab in value.labels], -value.values, value.present.copy())
    raise PromQLError("unary minus is only allowed on scalars and instant vectors")


def evaluate(engine, node, ctx):
    op = str(node.op)
    modifier = node.modifier
    return_bool = bool(modifier and modifier.return_bool)
    lhs = engine.eval(node.lhs, ctx)
    rhs = engine.eval(node.rhs, ctx)
    if isinstance(lhs, String) or isinstance(rhs, String):
        raise PromQLError(f"binary operator {op!r} does not apply to strings")
    if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
        if op in COMPARISON:
            return Scalar(_compare(op, lhs.values, rhs.values).astype(float))
        return Scalar(_arith(op, lhs.values, rhs.values))
    if isinstance(lhs, Vector) and isinstance(rhs, Scalar):
        return _vector_scalar(op, lhs, rhs.values, swapped=False, return_bool=return_bool)
    if isinstance(lhs, Scalar) and isinstance(rhs, Vector):
        return _vector_scalar(op, rhs, lhs.values, swapped=True, return_bool=return_bool)
    if not isinstance(lhs, Vector) or not isinstance(rhs, Vector):
        raise PromQLError(f"binary operator {op!r} needs scalars or instant vectors")
    on, names = _matching(modifier)
    if op in SETS:
        return _set_op(op, lhs, rhs, on, names)
    card = str(modifier.card) if modifier is not None else "VectorMatchCardinality.OneToOne"
    include = list(modifier.group_labels or []) if modifier is not None and modifier.group_labels else []
    return _vector_vector(op, lhs, rhs, on, names, card, include, return_bool)


def _matching(modifier) -> tuple[bool, set[str]]:
    if modifier is None or modifier.matching is None:
        return False, set()
    return str(modifier.matching.type).endswith("Include"), set(modifier.matching.labels)


def _signature(labels: Labels, on: bool, names: set[str]) -> Labels:
    if on:
        return tuple(p for p in labels if p[0] in names)
    return tuple(p for p in labels if p[0] not in names and p[0] != METRIC_NAME)


def _vector_scalar(op: str, vec: Vector, scalar: np.ndarray, swapped: bool, return_bool: bool) -> Vector:
    s = scalar[None, :]
    a, b = (s, vec.values) if swapped else (vec.values, s)
    if op in COMPARISON:
        keep = _compare(op, a, b)
        if return_bool:
            return Vector([drop_name(lab) for lab in vec.labels], keep.astype(float), vec.present.copy())
        return Vector(list(vec.labels), vec.values, vec.present & keep, vec.stamps)
    if op in SETS:
        raise PromQLError(f"set operator {op!r} not allowed in binary scalar expression")
    return Vector([drop_name(lab) for lab in vec.labels], _arith(op, a, b), vec.present.copy())


def _set_op(op: str, lhs: Vector, rhs: Vector, on: bool, names: set[str]) -> Vector:
    steps = lhs.present.shape[1] if len(lhs) else rhs.present.shape[1] if len(rhs) else 0

    def coverage(vec: Vector) -> dict[Labels, np.ndarray]:
        out: dict[Labels, np.ndarray] = {}
        for i, labels in enumerate(vec.labels):
            sig = _signature(labels, on, names)
            cur = out.get(sig)
            out[sig] = vec.present[i].copy() if cur is None else cur | vec.present[i]
        return out

    if op == "and":
        right = coverage(rhs)
        none = np.zeros(steps, dtype=bool)
        present = np.vstack([lhs.present[i] & right.get(_signature(lab, on, names), none)
                             for i, lab in enumerate(lhs.labels)]) if len(lhs) else lhs.present
        return Vector(list(lhs.labels), lhs.values, present, lhs.stamps).compact()
    if op == "unless":
        right = coverage(rhs)
        none = np.zeros(steps, dtype=bool)
        present = np.vstack([lhs.present[i] & ~right.get(_signature(lab, on, names), none)
                             for i, lab in enumerate(lhs.labels)]) if len(lhs) else lhs.present
        return Vector(list(lhs.labels), lhs.values, present, lhs.stamps).compact()
    left = coverage(lhs)
    none = np.zeros(steps, dtype=bool)
    labels = list(lhs.labels) + list(rhs.labels)
    if not labels:
        return Vector.empty(steps)
    values = [lhs.values[i] for i in range(len(lhs))] + [rhs.values[j] for j in range(len(rhs))]
    present = [lhs.present[i] for i in range(len(lhs))] + [
        rhs.present[j] & ~left.get(_signature(lab, on, names), none) for j, lab in enumerate(rhs.labels)]
    return Vector(labels, np.vstack(values), np.vstack(present)).compact()


def _result_labels(many: Labels, one: Labels, op: str, on: bool, names: set[str], card: str,
                   include: list[str], return_bool: bool) -> Labels:
    out = dict(many)
    if op in ARITHMETIC or return_bool:
        out.pop(METRIC_NAME, None)
    if card.endswith("OneToOne"):
        if on:
            out = {k: v for k, v in out.items() if k in names}
        else:
            for name in names:
                out.pop(name, None)
    one_map = dict(one)
    for name in include:
        if one_map.get(name, ""):
            out[name] = one_map[name]
        else:
            out.pop(name, None)
    return tuple(sorted(out.items()))


def _vector_vector(op: str, lhs: Vector, rhs: Vector, on: bool, names: set[str], card: str, include: list[str],
                   return_bool: bool) -> Vector:
    steps = lhs.present.shape[1] if len(lhs) else rhs.present.shape[1] if len(rhs) else 0
    one_to_many = card.endswith("OneToMany")
    many, one = (rhs, lhs) if one_to_many else (lhs, rhs)
    # the "one" side must have at most one series per signature at each step
    one_groups: dict[Labels, list[int]] = {}
    for j, labels in enumerate(one.labels):
        one_groups.setdefault(_signature(labels, on, names), []).append(j)
    side = "left" if one_to_many else "right"
    for sig, members in one_groups.items():
        if len(members) > 1 and (one.present[members].sum(axis=0) > 1).any():
            raise ExecutionError(
                f"found duplicate series for the match group {_fmt(sig)} on the {side} hand-side of the "
                "operation; many-to-many matching not allowed: matching labels must be unique on one side")
    out_labels: list[Labels] = []
    rows, pres = [], []
    seen: dict[Labels, int] = {}
    matched_many: dict[Labels, np.ndarray] = {}
    for i, labels in enumerate(many.labels):
        sig = _signature(labels, on, names)
        partners = one_groups.get(sig)
        if not partners:
            continue
        if card.endswith("OneToOne"):
            taken = matched_many.get(sig)
            both = many.present[i] & one.present[partners].any(axis=0)
            if taken is not None and (taken & both).any():
                raise ExecutionError("multiple matches for labels: many-to-one matching must be explicit "
                                     "(group_left/group_right)")
            matched_many[sig] = both if taken is None else taken | both
        for j in partners:
            present = many.present[i] & one.present[j]
            if not present.any():
                continue
            a, b = (one.values[j], many.values[i]) if one_to_many else (many.values[i], one.values[j])
            if op in COMPARISON:
                keep = _compare(op, a, b)
                if return_bool:
                    values = keep.astype(float)
                else:
                    values = a.copy()  # the left operand's value is kept
                    present = present & keep
            else:
                values = _arith(op, a, b)
            if not present.any():
                continue
            result = _result_labels(labels, one.labels[j], op, on, names, card, include, return_bool)
            k = seen.get(result)
            if k is not None:
                if (pres[k] & present).any():
                    raise ExecutionError("multiple matches for labels: grouping labels must ensure unique matches"
                                         if not card.endswith("OneToOne") else
                                         "vector cannot contain metrics with the same labelset")
                rows[k] = np.where(present, values, rows[k])
                pres[k] = pres[k] | present
                continue
            seen[result] = len(out_labels)
            out_labels.append(result)
            rows.append(np.asarray(values, dtype=float))
            pres.append(present)
    if not out_labels:
        return Vector.empty(steps)
    return Vector(out_labels, np.vstack(rows), np.vstack(pres))


def _fmt(labels: Labels) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}"
