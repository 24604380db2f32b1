"""A LogQL parser for the subset pantau evaluates (see `pantau.query.logql`).

Recursive descent over a small tokenizer. Anything outside the subset is refused with a
`LogQLError` that names the construct, never guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pantau.config import parse_duration
from pantau.store.base import Matcher


class LogQLError(ValueError):
    """Invalid or unsupported LogQL (HTTP 400, as Loki answers)."""


# --- AST -----------------------------------------------------------------------------------------


@dataclass
class LineFilter:
    op: str  # |=  !=  |~  !~
    value: str


@dataclass
class ParserStage:
    kind: str  # json | logfmt | pattern | regexp
    argument: str = ""
    params: list[tuple[str, str]] = field(default_factory=list)  # json a="x.y"


@dataclass
class Comparison:
    label: str
    op: str  # = != =~ !~ == > >= < <=
    value: str | float
    kind: str = "string"  # string | number | duration | bytes


@dataclass
class BoolExpr:
    op: str  # and | or
    left: object
    right: object


@dataclass
class LabelFilter:
    expr: object  # Comparison | BoolExpr


@dataclass
class LineFormat:
    template: str


@dataclass
class LogSelector:
    matchers: list[Matcher]
    stages: list[object] = field(default_factory=list)


@dataclass
class RangeAggregation:
    function: str  # count_over_time | rate | bytes_over_time | bytes_rate | absent_over_time
    selector: LogSelector
    range_ms: int
    offset_ms: int = 0


@dataclass
class VectorAggregation:
    op: str  # sum avg min max count topk bottomk
    expr: object
    grouping: list[str] | None = None
    without: bool = False
    param: float | None = None


@dataclass
class BinaryOp:
    op: str
    left: object
    right: object
    return_bool: bool = False


@dataclass
class NumberLiteral:
    value: float


RANGE_FUNCTIONS = {"count_over_time", "rate", "bytes_over_time", "bytes_rate", "absent_over_time"}
UNWRAP_FUNCTIONS = {"sum_over_time", "avg_over_time", "max_over_time", "min_over_time", "first_over_time",
                    "last_over_time", "stdvar_over_time", "stddev_over_time", "quantile_over_time",
                    "rate_counter"}
VECTOR_AGGREGATIONS = {"sum", "avg", "min", "max", "count", "topk", "bottomk", "stddev", "stdvar"}
UNSUPPORTED_STAGES = {"unpack", "label_format", "drop", "keep", "decolorize", "unwrap"}

# --- tokenizer -----------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    \s+
  | (?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
  | (?P<duration>\d+(?:\.\d+)?(?:ms|s|m|h|d|w|y)(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w|y))*)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+)
  | (?P<op>\|=|\|~|!=|!~|=~|==|>=|<=|[{}()\[\],|=<>+\-*/%^])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
""", re.VERBOSE)


def _unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]
    out, i = [], 1
    while i < len(text) - 1:
        c = text[i]
        if c == "\\" and i + 1 < len(text) - 1:
            nxt = text[i + 1]
            out.append({"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def tokenize(query: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if not m:
            raise LogQLError(f"parse error at col {pos + 1}: unexpected character {query[pos]!r}")
        if m.lastgroup:
            tokens.append((m.lastgroup, m.group(m.lastgroup), pos))
        pos = m.end()
    return tokens


# --- parser --------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = tokenize(query)
        self.i = 0

    def peek(self, k: int = 0) -> tuple[str, str, int] | None:
        return self.tokens[self.i + k] if self.i + k < len(self.tokens) else None

    def next(self) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            raise LogQLError("parse error: unexpected end of query")
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        tok = self.next()
        if tok[1] != value:
            raise LogQLError(f"parse error at col {tok[2] + 1}: expected {value!r}, got {tok[1]!r}")

    def at(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[1] == value

    def parse(self):
        expr = self.expression(0)
        if self.peek() is not None:
            tok = self.peek()
            raise LogQLError(f"parse error at col {tok[2] + 1}: unexpected {tok[1]!r}")
        return expr

    # binary operators, lowest precedence first
    _PRECEDENCE = {"or": 1, "and": 2, "unless": 2, "==": 3, "!=": 3, ">": 3, "<": 3, ">=": 3, "<=": 3,
                   "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "^": 6}

    def expression(self, min_prec: int):
        left = self.unary()
        while True:
            tok = self.peek()
            if tok is None or tok[1] not in self._PRECEDENCE or self._PRECEDENCE[tok[1]] < min_prec:
                return left
            op = self.next()[1]
            if op in ("and", "or", "unless"):
                raise LogQLError(f"unsupported LogQL construct: set operator {op!r} between metric queries")
            return_bool = False
            if self.at("bool"):
                self.next()
                return_bool = True
            if self.at("on") or self.at("ignoring"):
                raise LogQLError(f"unsupported LogQL construct: vector matching with {self.peek()[1]}()")
            right = self.expression(self._PRECEDENCE[op] + (0 if op == "^" else 1))
            left = BinaryOp(op, left, right, return_bool)

    def unary(self):
        if self.at("-"):
            self.next()
            return BinaryOp("*", NumberLiteral(-1.0), self.unary())
        return self.primary()

    def primary(self):
        tok = self.peek()
        if tok is None:
            raise LogQLError("parse error: unexpected end of query")
        kind, value, pos = tok
        if value == "(":
            self.next()
            inner = self.expression(0)
            self.expect(")")
            return inner
        if kind == "number":
            self.next()
            return NumberLiteral(float(value))
        if value == "{":
            return self.log_selector()
        if kind == "ident":
            if value in RANGE_FUNCTIONS:
                return self.range_aggregation()
            if value in UNWRAP_FUNCTIONS:
                raise LogQLError(f"unsupported LogQL construct: {value}() (unwrapped range aggregations)")
            if value in VECTOR_AGGREGATIONS:
                return self.vector_aggregation()
            raise LogQLError(f"unsupported LogQL construct: {value}")
        raise LogQLError(f"parse error at col {pos + 1}: unexpected {value!r}")

    def string(self) -> str:
        tok = self.next()
        if tok[0] != "string":
            raise LogQLError(f"parse error at col {tok[2] + 1}: expected a string, got {tok[1]!r}")
        return _unquote(tok[1])

    def log_selector(self) -> LogSelector:
        self.expect("{")
        matchers: list[Matcher] = []
        while not self.at("}"):
            name = self.next()
            if name[0] != "ident":
                raise LogQLError(f"parse error at col {name[2] + 1}: expected a label name")
            op = self.next()[1]
            if op not in ("=", "!=", "=~", "!~"):
                raise LogQLError(f"parse error: unknown matcher operator {op!r}")
            try:
                matchers.append(Matcher(name[1], op, self.string()))
            except ValueError as exc:
                raise LogQLError(f"parse error: {exc}") from None
            if self.at(","):
                self.next()
        self.expect("}")
        if not matchers or all(m.matches_empty for m in matchers):
            raise LogQLError("parse error: queries require at least one regexp or equality matcher that does not "
                             "have an empty-compatible value. For instance, app=~\".*\" does not meet this "
                             "requirement, but app=~\".+\" will")
        selector = LogSelector(matchers)
        while True:
            tok = self.peek()
            if tok is None:
                return selector
            if tok[1] in ("|=", "!=", "|~", "!~"):
                self.next()
                op = tok[1]
                value = self.string()
                if op in ("|~", "!~"):
                    try:
                        re.compile(value)
                    except re.error as exc:
                        raise LogQLError(f"parse error: invalid regular expression {value!r}: {exc}") from None
                selector.stages.append(LineFilter(op, value))
                if self.at("or"):
                    raise LogQLError("unsupported LogQL construct: 'or' between line filters")
                continue
            if tok[1] == "|":
                self.next()
                selector.stages.append(self.stage())
                continue
            return selector

    def stage(self):
        tok = self.next()
        name = tok[1]
        if name == "json":
            params = []
            while self.peek() is not None and self.peek()[0] == "ident":
                label = self.next()[1]
                expr = label
                if self.at("="):
                    self.next()
                    expr = self.string()
                params.append((label, expr))
                if self.at(","):
                    self.next()
            return ParserStage("json", params=params)
        if name == "logfmt":
            while self.peek() is not None and self.peek()[1].startswith("--"):
                self.next()
            return ParserStage("logfmt")
        if name in ("pattern", "regexp"):
            argument = self.string()
            if name == "regexp":
                try:
                    re.compile(_go_regex(argument))
                except re.error as exc:
                    raise LogQLError(f"parse error: invalid regular expression {argument!r}: {exc}") from None
            return ParserStage(name, argument)
        if name == "line_format":
            return LineFormat(self.string())
        if name in UNSUPPORTED_STAGES:
            raise LogQLError(f"unsupported LogQL construct: | {name}")
        if tok[0] == "ident":
            self.i -= 1
            return LabelFilter(self.label_expression())
        raise LogQLError(f"parse error at col {tok[2] + 1}: unexpected {name!r} after '|'")

    def label_expression(self):
        left = self.label_term()
        while self.at("and") or self.at("or") or self.at(","):
            op = self.next()[1]
            right = self.label_term()
            left = BoolExpr("or" if op == "or" else "and", left, right)
        return left

    def label_term(self):
        if self.at("("):
            self.next()
            inner = self.label_expression()
            self.expect(")")
            return inner
        label = self.next()
        if label[0] != "ident":
            raise LogQLError(f"parse error at col {label[2] + 1}: expected a label name, got {label[1]!r}")
        op = self.next()[1]
        if op not in ("=", "!=", "=~", "!~", "==", ">", ">=", "<", "<="):
            raise LogQLError(f"parse error: unknown label filter operator {op!r}")
        tok = self.next()
        if tok[0] == "string":
            value = _unquote(tok[1])
            if op in ("=~", "!~"):
                try:
                    re.compile(_go_regex(value))
                except re.error as exc:
                    raise LogQLError(f"parse error: invalid regular expression {value!r}: {exc}") from None
            if op in (">", ">=", "<", "<="):
                raise LogQLError(f"parse error: operator {op!r} needs a number or a duration")
            return Comparison(label[1], "=" if op == "==" else op, value, "string")
        if tok[0] == "number":
            return Comparison(label[1], op, float(tok[1]), "number")
        if tok[0] == "duration":
            return Comparison(label[1], op, parse_duration(tok[1]), "duration")
        raise LogQLError(f"parse error at col {tok[2] + 1}: unexpected {tok[1]!r} in a label filter")

    def range_aggregation(self) -> RangeAggregation:
        function = self.next()[1]
        self.expect("(")
        selector = self.log_selector()
        self.expect("[")
        tok = self.next()
        if tok[0] != "duration":
            raise LogQLError(f"parse error at col {tok[2] + 1}: expected a duration, got {tok[1]!r}")
        range_ms = int(parse_duration(tok[1]) * 1000)
        self.expect("]")
        offset_ms = 0
        if self.at("offset"):
            self.next()
            offset_ms = int(parse_duration(self.next()[1]) * 1000)
        self.expect(")")
        if self.at("by") or self.at("without"):
            raise LogQLError(f"unsupported LogQL construct: grouping on {function}()")
        return RangeAggregation(function, selector, range_ms, offset_ms)

    def vector_aggregation(self) -> VectorAggregation:
        op = self.next()[1]
        grouping, without = None, False
        if self.at("by") or self.at("without"):
            without = self.next()[1] == "without"
            grouping = self.label_list()
        self.expect("(")
        param = None
        if op in ("topk", "bottomk"):
            tok = self.next()
            if tok[0] != "number":
                raise LogQLError(f"parse error: {op}() needs a number as its first argument")
            param = float(tok[1])
            self.expect(",")
        inner = self.expression(0)
        self.expect(")")
        if self.at("by") or self.at("without"):
            without = self.next()[1] == "without"
            grouping = self.label_list()
        return VectorAggregation(op, inner, grouping, without, param)

    def label_list(self) -> list[str]:
        self.expect("(")
        names = []
        while not self.at(")"):
            tok = self.next()
            if tok[0] != "ident":
                raise LogQLError(f"parse error: expected a label name, got {tok[1]!r}")
            names.append(tok[1])
            if self.at(","):
                self.next()
        self.expect(")")
        return names


def _go_regex(pattern: str) -> str:
    """RE2 and Python agree on what LogQL users write; only `(?P<name>)` is spelled alike too."""
    return pattern


def parse(query: str):
    if not query or not query.strip():
        raise LogQLError("parse error: empty query")
    return _Parser(query).parse()
