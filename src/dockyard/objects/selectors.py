"""Label and field selectors: parsing, matching and canonical strings, as Kubernetes has them.

Label selectors come as text (``?labelSelector=app=web,tier in (a,b),!canary``) or as a
metav1.LabelSelector dict (``matchLabels`` + ``matchExpressions``). Semantics, as Kubernetes:
an EMPTY selector ({} or "") matches every object; a MISSING selector (None) matches nothing
(``LabelSelector.nothing()``). ``str(selector)`` is the canonical form: requirements sorted by
key, set values sorted (this is what Scale's ``status.selector`` carries).

Field selectors support only the fields Kubernetes supports per kind (metadata.name and
metadata.namespace everywhere, plus per-kind fields such as pods' spec.nodeName); anything else
raises ``SelectorError("field label not supported: X")``. Operators: =, ==, !=.

Node selectors (``NodeSelectorTerm``) add Kubernetes' node operators Gt and Lt (integer
comparison; a missing or non-integer label fails) and ``matchFields`` on metadata.name; an
empty term matches no node. ``compile_selector`` parses a metav1.LabelSelector dict once per
distinct value (a bounded cache keyed by ``freeze``), for callers such as the scheduler that
match the same few selectors against many label sets.

Invariants: parsing either returns a selector or raises SelectorError naming the bad term;
matching never raises; a parsed selector is never modified, so cached ones can be shared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dockyard.objects.validation import (
    FieldError,
    as_dict,
    as_list,
    check,
    forbidden,
    hashable,
    invalid,
    label_value,
    list_of,
    not_supported,
    qualified_name,
    required,
    type_invalid,
    validate_labels,
)


class SelectorError(ValueError):
    """A selector string or dict is malformed; the message names the bad term."""


_EQUALS, _DOUBLE_EQUALS, _NOT_EQUALS = "=", "==", "!="
_IN, _NOT_IN, _EXISTS, _NOT_EXISTS = "in", "notin", "exists", "!"
_GT, _LT = "gt", "lt"


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector: key, operator and (sorted) values."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return True if the labels satisfy this requirement."""
        present = self.key in labels
        if self.operator in (_EQUALS, _DOUBLE_EQUALS, _IN):
            return present and labels[self.key] in self.values
        if self.operator in (_NOT_EQUALS, _NOT_IN):
            return not present or labels[self.key] not in self.values
        if self.operator == _EXISTS:
            return present
        if self.operator in (_GT, _LT):
            return present and _compare_int(labels[self.key], self.values[0], self.operator)
        return not present

    def __str__(self) -> str:
        if self.operator in (_GT, _LT):
            return f"{self.key}{'>' if self.operator == _GT else '<'}{self.values[0]}"
        if self.operator == _EXISTS:
            return self.key
        if self.operator == _NOT_EXISTS:
            return "!" + self.key
        if self.operator in (_IN, _NOT_IN):
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        return f"{self.key}{self.operator}{self.values[0]}"


def _compare_int(value: str, bound: str, operator: str) -> bool:
    try:
        have = int(value)
    except ValueError:
        return False  # a non-integer label fails Gt and Lt alike, as in Kubernetes
    return have > int(bound) if operator == _GT else have < int(bound)


def _requirement(key: str, operator: str, values: Iterable[str]) -> Requirement:
    problems = qualified_name(key)
    if problems:
        raise SelectorError(f"invalid label key {key!r}: {problems[0]}")
    vals = tuple(sorted(set(values)))
    if operator in (_IN, _NOT_IN) and not vals:
        raise SelectorError(f"for 'in', 'notin' operators, values set can't be empty ({key})")
    for value in vals:
        value_problems = label_value(value)
        if value_problems:
            raise SelectorError(f"invalid label value {value!r} for {key!r}: {value_problems[0]}")
    return Requirement(key, operator, vals)


class LabelSelector:
    """A conjunction of label requirements; see the module docstring for None vs empty."""

    def __init__(self, requirements: Iterable[Requirement] = (), *, nothing: bool = False):
        self.requirements: tuple[Requirement, ...] = tuple(
            sorted(requirements, key=lambda r: r.key)
        )
        self.matches_nothing = nothing
        # Equality terms (matchLabels, "a=b", "a in (b)") are most terms; checking them as
        # (key, value) pairs makes matching as fast as comparing dicts by hand.
        self._equal = tuple((r.key, r.values[0]) for r in self.requirements if _is_equality(r))
        self._other = tuple(r for r in self.requirements if not _is_equality(r))

    @classmethod
    def everything(cls) -> LabelSelector:
        """Return the selector that matches every object."""
        return cls()

    @classmethod
    def nothing(cls) -> LabelSelector:
        """Return the selector that matches no object (what a missing selector means)."""
        return cls(nothing=True)

    @classmethod
    def from_set(cls, labels: Mapping[str, str]) -> LabelSelector:
        """Return the selector requiring every given label (key=value)."""
        return cls(_requirement(k, _EQUALS, [v]) for k, v in labels.items())

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """Parse a label selector string such as "app=web,tier in (a,b),!canary"."""
        return cls(_parse_terms(text))

    @classmethod
    def from_dict(cls, selector: dict[str, Any] | None) -> LabelSelector:
        """Build a selector from a metav1.LabelSelector dict; None matches nothing."""
        if selector is None:
            return cls.nothing()
        if not isinstance(selector, dict):
            raise SelectorError(f"a label selector must be an object, not {selector!r}")
        match_labels = _typed(selector, "matchLabels", dict)
        reqs = [_requirement(k, _EQUALS, [_label_text(k, v)]) for k, v in match_labels.items()]
        for expr in _typed(selector, "matchExpressions", list):
            reqs.append(_expression(expr))
        return cls(reqs)

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Return True if a label set satisfies every requirement."""
        if self.matches_nothing:
            return False
        if type(labels) is not dict and not isinstance(labels, Mapping):
            labels = {}  # absent or malformed labels satisfy only negative requirements
        for key, value in self._equal:
            if labels.get(key) != value:
                return False
        return all(r.matches(labels) for r in self._other)

    def empty(self) -> bool:
        """Return True if this selector matches everything."""
        return not self.matches_nothing and not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return "LabelSelector(<nothing>)" if self.matches_nothing else f"LabelSelector({self})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSelector):
            return NotImplemented
        return (self.requirements, self.matches_nothing) == (
            other.requirements,
            other.matches_nothing,
        )

    def __hash__(self) -> int:
        return hash((self.requirements, self.matches_nothing))


def _is_equality(req: Requirement) -> bool:
    single_in = req.operator == _IN and len(req.values) == 1
    return req.operator in (_EQUALS, _DOUBLE_EQUALS) or single_in


_EXPRESSION_OPS = {"In": _IN, "NotIn": _NOT_IN, "Exists": _EXISTS, "DoesNotExist": _NOT_EXISTS}
_NODE_OPS = {**_EXPRESSION_OPS, "Gt": _GT, "Lt": _LT}


def _expression(expr: Any, operators: Mapping[str, str] = _EXPRESSION_OPS) -> Requirement:
    if not isinstance(expr, dict):
        raise SelectorError(f"a matchExpressions entry must be an object, not {expr!r}")
    operator = operators.get(hashable(expr.get("operator", "")))
    if operator is None:
        raise SelectorError(f"{expr.get('operator')!r} is not a valid label selector operator")
    values = [_label_text(str(expr.get("key")), v) for v in _typed(expr, "values", list)]
    if operator in (_EXISTS, _NOT_EXISTS) and values:
        raise SelectorError("values set must be empty for exists and does not exist")
    if operator in (_GT, _LT):
        return _numeric_requirement(str(expr.get("key", "")), operator, values)
    return _requirement(str(expr.get("key", "")), operator, values)


def _numeric_requirement(key: str, operator: str, values: list[str]) -> Requirement:
    try:
        (bound,) = [str(int(v)) for v in values]
    except ValueError:
        raise SelectorError(f"for 'Gt', 'Lt' operators, {key!r} needs one integer value") from None
    return Requirement(_requirement(key, _EXISTS, []).key, operator, (bound,))


# --- compiled selectors for hot paths ------------------------------------------------------

_COMPILED: dict[Any, LabelSelector] = {}
_COMPILED_MAX = 4096
_NOTHING = LabelSelector.nothing()


def freeze(value: Any) -> Any:
    """Return a hashable copy of a JSON-like value, for use as a cache key."""
    kind = type(value)
    if kind is str:
        return value  # most leaves: tested first, since ABC checks cost a microsecond each
    if kind is dict or isinstance(value, Mapping):
        return tuple(sorted([(k, freeze(v)) for k, v in value.items()]))
    if kind is list or kind is tuple:
        return tuple([freeze(v) for v in value])
    return value


def compile_selector(selector: Mapping[str, Any] | None) -> LabelSelector:
    """Return the parsed metav1.LabelSelector dict, parsing each distinct value once."""
    if selector is None:
        return _NOTHING
    key = freeze(selector)
    found = _COMPILED.get(key)
    if found is None:
        found = LabelSelector.from_dict(dict(selector))
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.clear()  # a bound, not an LRU: selectors in use are re-parsed once
        _COMPILED[key] = found
    return found


def _field_requirement(field: Any) -> Requirement:
    """Parse one matchFields entry; only metadata.name exists, and node names need not be labels."""
    if not isinstance(field, dict) or field.get("key") != "metadata.name":
        key = field.get("key") if isinstance(field, dict) else field
        raise SelectorError(f"unsupported matchFields key {key!r}: only metadata.name")
    operator = {"In": _IN, "NotIn": _NOT_IN}.get(hashable(field.get("operator")))
    values = [_label_text("metadata.name", v) for v in _typed(field, "values", list)]
    if operator is None or not values:
        raise SelectorError("matchFields on metadata.name needs In or NotIn and node names")
    return Requirement("metadata.name", operator, tuple(sorted(set(values))))


class NodeSelectorTerm:
    """One v1 NodeSelectorTerm: matchExpressions on labels AND matchFields on metadata.name."""

    def __init__(self, expressions: LabelSelector, fields: LabelSelector, empty: bool) -> None:
        self.expressions = expressions
        self.fields = fields
        self.matches_nothing = empty

    @classmethod
    def from_dict(cls, term: Mapping[str, Any]) -> NodeSelectorTerm:
        """Parse a NodeSelectorTerm dict (operators In, NotIn, Exists, DoesNotExist, Gt, Lt)."""
        if not isinstance(term, Mapping):
            raise SelectorError(f"a node selector term must be an object, not {term!r}")
        exprs = _typed(dict(term), "matchExpressions", list)
        fields = _typed(dict(term), "matchFields", list)
        return cls(
            LabelSelector(_expression(e, _NODE_OPS) for e in exprs),
            LabelSelector(_field_requirement(f) for f in fields),
            not exprs and not fields,
        )

    def matches(self, labels: Mapping[str, str] | None, name: str) -> bool:
        """Return True if a node with these labels and this name satisfies the term."""
        if self.matches_nothing:
            return False
        return self.expressions.matches(labels) and self.fields.matches({"metadata.name": name})


def _typed(obj: dict[str, Any], key: str, kind: type) -> Any:
    """Return obj[key] (or an empty kind when absent), raising when it has the wrong type."""
    value = obj.get(key)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise SelectorError(f"{key} must be {'an object' if kind is dict else 'a list'}")
    return value


def _label_text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SelectorError(f"the value for {key!r} must be a string, not {value!r}")
    return value


# --- the label selector grammar -------------------------------------------------------------


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside a parenthesised value set."""
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unexpected ')' in label selector {text!r}")
        elif ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    if depth:
        raise SelectorError(f"unclosed '(' in label selector {text!r}")
    terms.append(text[start:])
    return terms


def _parse_terms(text: str) -> list[Requirement]:
    if not text.strip():
        return []
    return [_parse_term(term.strip(), text) for term in _split_terms(text)]


def _parse_term(term: str, text: str) -> Requirement:
    if not term:
        raise SelectorError(f"empty requirement in label selector {text!r}")
    if term.startswith("!"):
        return _requirement(term[1:].strip(), _NOT_EXISTS, [])
    for op in (_NOT_EQUALS, _DOUBLE_EQUALS, _EQUALS):
        if op in term:
            key, _, value = term.partition(op)
            return _requirement(key.strip(), op, [value.strip()])
    words = term.split(None, 1)
    if len(words) == 1:
        return _requirement(words[0], _EXISTS, [])
    key, rest = words
    op_word, _, values = rest.partition("(")
    op_word = op_word.strip()
    if op_word not in (_IN, _NOT_IN) or not values.endswith(")"):
        raise SelectorError(
            f"unable to parse requirement {term!r}: expected 'in (...)', "
            "'notin (...)', '=', '==' or '!='"
        )
    items = [v.strip() for v in values[:-1].split(",")]
    return _requirement(key, op_word, [v for v in items if v] if items != [""] else [])


# --- validation of metav1.LabelSelector in objects -----------------------------------------


def validate_label_selector(selector: Any, field: str) -> list[FieldError]:
    """Return the problems with a metav1.LabelSelector dict found at a field path."""
    if not isinstance(selector, dict):
        return [type_invalid(field, selector, "must be an object")]
    errs: list[FieldError] = []
    match_labels = as_dict(selector, "matchLabels", f"{field}.matchLabels", errs)
    errs += validate_labels(
        {k: v for k, v in match_labels.items() if isinstance(v, str)}, f"{field}.matchLabels"
    )
    for i, expr in enumerate(
        as_list(selector, "matchExpressions", f"{field}.matchExpressions", errs)
    ):
        errs += _validate_expression(expr, f"{field}.matchExpressions[{i}]")
    return errs


def operator_values_error(operator: Any, values: list[Any], field: str) -> FieldError | None:
    """Return the error of In/NotIn without values or Exists/DoesNotExist with some, else None.

    Label selector expressions and node selector requirements share this rule (field is the
    requirement's path; the error names its ``values``).
    """
    if operator in ("In", "NotIn") and not values:
        return required(f"{field}.values", "must be specified when `operator` is 'In' or 'NotIn'")
    if operator in ("Exists", "DoesNotExist") and values:
        return forbidden(
            f"{field}.values",
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        )
    return None


def _validate_expression(expr: Any, field: str) -> list[FieldError]:
    if not isinstance(expr, dict):
        return [type_invalid(field, expr, "must be an object")]
    errs: list[FieldError] = []
    operator = expr.get("operator")
    error = operator_values_error(operator, list_of(expr.get("values")), field)
    if error is not None:
        errs.append(error)
    elif hashable(operator) not in _EXPRESSION_OPS:
        errs.append(not_supported(f"{field}.operator", operator, list(_EXPRESSION_OPS)))
    values = as_list(expr, "values", f"{field}.values", errs)
    for i, value in enumerate(values):
        errs += check(f"{field}.values[{i}]", value, label_value)
    key = expr.get("key")
    if not isinstance(key, str) or not key:
        errs.append(required(f"{field}.key"))
    else:
        errs += [invalid(f"{field}.key", key, m) for m in qualified_name(key)]
    return errs


# --- field selectors -----------------------------------------------------------------------

FieldGetter = Callable[[dict[str, Any]], Any]


def _path(*keys: str) -> FieldGetter:
    def get(obj: dict[str, Any]) -> Any:
        """Walk the keys; a missing or non-object step yields None."""
        value: Any = obj
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    return get


def _field(dotted: str) -> FieldGetter:
    return _path(*dotted.split("."))


_COMMON = {
    "metadata.name": _field("metadata.name"),
    "metadata.namespace": _field("metadata.namespace"),
}

_EVENT_FIELDS = {
    f"involvedObject.{k}": _field(f"involvedObject.{k}")
    for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
}

FIELDS_BY_KIND: dict[str, dict[str, FieldGetter]] = {
    "Pod": {
        name: _field(name)
        for name in (
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        )
    },
    "Event": {
        **_EVENT_FIELDS,
        "reason": _field("reason"),
        "reportingComponent": _field("reportingComponent"),
        "source": _field("source.component"),
        "type": _field("type"),
    },
    "Node": {"spec.unschedulable": _field("spec.unschedulable")},
    "Secret": {"type": _field("type")},
    "Namespace": {"status.phase": _field("status.phase")},
    "ReplicaSet": {"status.replicas": _field("status.replicas")},
    "Service": {"spec.clusterIP": _field("spec.clusterIP"), "spec.type": _field("spec.type")},
}


def supported_fields(kind: str) -> list[str]:
    """Return the field selector labels a kind supports."""
    return [*_COMMON, *FIELDS_BY_KIND.get(kind, {})]


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class FieldRequirement:
    """One field selector term: field, operator ("=" or "!=") and value."""

    field: str
    operator: str
    value: str

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        return f"{self.field}{self.operator}{escaped}"


class FieldSelector:
    """A conjunction of field requirements over the fields a kind supports."""

    def __init__(self, requirements: Iterable[FieldRequirement] = ()) -> None:
        self.requirements = tuple(requirements)

    @classmethod
    def parse(cls, text: str, kind: str | None = None) -> FieldSelector:
        """Parse "spec.nodeName=n1,status.phase!=Failed"; with a kind, refuse unknown fields."""
        reqs = [_field_term(t, text) for t in _split_escaped(text, ",") if t.strip()]
        selector = cls(reqs)
        if kind is not None:
            selector.check_kind(kind)
        return selector

    def check_kind(self, kind: str) -> None:
        """Raise SelectorError unless the kind supports every field used."""
        allowed = supported_fields(kind)
        for req in self.requirements:
            if req.field not in allowed:
                raise SelectorError(f"field label not supported: {req.field}")

    def matches(self, obj: dict[str, Any]) -> bool:
        """Return True if an object satisfies every requirement (unknown fields match none)."""
        getters = {**_COMMON, **FIELDS_BY_KIND.get(str(obj.get("kind", "")), {})}
        for req in self.requirements:
            getter = getters.get(req.field)
            if getter is None:
                return False
            equal = _field_text(getter(obj)) == req.value
            if equal != (req.operator == "="):
                return False
        return True

    def exact(self, field: str) -> str | None:
        """Return the value a field must equal, if the selector pins it (metadata.name=web)."""
        return next(
            (r.value for r in self.requirements if r.field == field and r.operator == "="), None
        )

    def empty(self) -> bool:
        """Return True if this selector matches everything."""
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _split_escaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], [], False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        raise SelectorError(f"field selector {text!r} ends with a lone backslash")
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out, escaped = [], False
    for ch in text:
        if escaped:
            if ch not in "\\,=":
                raise SelectorError(f"invalid escape sequence '\\{ch}' in field selector")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            out.append(ch)
    return "".join(out)


def _field_term(term: str, text: str) -> FieldRequirement:
    for op, normal in (("!=", "!="), ("==", "="), ("=", "=")):
        index = _find_unescaped(term, op)
        if index >= 0:
            field = term[:index].strip()
            if not field:
                raise SelectorError(f"invalid field selector term {term!r}: no field name")
            return FieldRequirement(field, normal, _unescape(term[index + len(op) :].strip()))
    raise SelectorError(f"invalid selector: {text!r}; can't understand {term!r}")


def _find_unescaped(term: str, op: str) -> int:
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        if term.startswith(op, i):
            return i
        i += 1
    return -1
