"""Go text/template, the subset Prometheus rules and Alertmanager notifications use.

Rule annotations (`{{ $labels.instance }} is at {{ $value | humanize }}`) and notification
templates (`{{ range .Alerts.Firing }}...{{ end }}`) are written in Go's template language;
users copy them from their Prometheus and Alertmanager setups, so pantau reads that language
rather than inventing its own. Supported: text and `{{- -}}` trimming, comments, pipelines
with `|`, variables (`$x := ...`, `$`), field and map access, `if`/`else if`/`else`,
`range` (with `$i, $v :=`), `with`, `define`/`template`, and the functions both projects
ship that matter for messages (humanize*, printf, toUpper, join, reReplaceAll, eq/ne/lt/gt,
and/or/not, len, index, title, safeHtml, match, stripPort, ...).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class TemplateError(ValueError):
    """A template that does not parse or fails while executing (message says where)."""


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_TOKEN = re.compile(r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)
  | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<decl>:=|=)
  | (?P<punct>[|(),])
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
  | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
)""", re.VERBOSE)


# --- parse tree ------------------------------------------------------------------------------

@dataclass
class _Text:
    text: str


@dataclass
class _Pipe:
    decl: list[str]  # variables assigned (`$x := ...`)
    cmds: list[list[Any]]  # each command: list of operands (tokens or nested _Pipe)
    assign: bool = False  # `$x = ...` rather than `:=`


@dataclass
class _Block:
    kind: str  # if | range | with
    pipe: _Pipe
    body: list[Any] = field(default_factory=list)
    else_body: list[Any] = field(default_factory=list)


@dataclass
class _Call:
    name: str
    pipe: _Pipe | None


def _unquote(tok: str) -> str:
    if tok.startswith("`"):
        return tok[1:-1]
    return bytes(tok[1:-1], "utf-8").decode("unicode_escape") if "\\" in tok else tok[1:-1]


def _tokens(src: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    src = src.strip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"unexpected {src[pos:pos + 10]!r} in action {{{{{src}}}}}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(src) and src[pos].isspace():
            pos += 1
    return out


def _parse_pipe(toks: list[tuple[str, str]]) -> _Pipe:
    decl: list[str] = []
    assign = False
    # `$x := pipeline` or `$i, $v := pipeline`
    for i, (k, v) in enumerate(toks):
        if k == "decl":
            names = [t[1] for t in toks[:i] if t[0] == "var"]
            if names and all(t[0] in ("var", "punct") for t in toks[:i]):
                decl, assign, toks = names, v == "=", toks[i + 1:]
            break
        if k not in ("var", "punct") or (k == "punct" and v != ","):
            break
    cmds: list[list[Any]] = [[]]
    i = 0
    while i < len(toks):
        k, v = toks[i]
        if k == "punct" and v == "|":
            cmds.append([])
        elif k == "punct" and v == "(":
            depth, j = 1, i + 1
            while j < len(toks) and depth:
                if toks[j] == ("punct", "("):
                    depth += 1
                elif toks[j] == ("punct", ")"):
                    depth -= 1
                j += 1
            if depth:
                raise TemplateError("unclosed parenthesis in template action")
            cmds[-1].append(_parse_pipe(toks[i + 1:j - 1]))
            i = j
            continue
        else:
            cmds[-1].append((k, v))
        i += 1
    if any(not c for c in cmds):
        raise TemplateError("empty command in template pipeline")
    return _Pipe(decl, cmds, assign)


def parse(src: str, defines: dict[str, list] | None = None) -> tuple[list, dict[str, list]]:
    """Parse template text into a tree; `define` blocks are collected into `defines`."""
    defines = {} if defines is None else defines
    root: list = []
    stack: list[tuple[str, Any, list]] = [("root", None, root)]
    pos = 0
    pending_trim = False
    for m in _ACTION.finditer(src):
        text = src[pos:m.start()]
        if pending_trim:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        if text:
            stack[-1][2].append(_Text(text))
        pos = m.end()
        pending_trim = bool(m.group(3))
        body = m.group(2).strip()
        if body.startswith("/*"):
            continue
        word = body.split(None, 1)[0] if body else ""
        rest = body[len(word):].strip()
        if word in ("if", "range", "with"):
            block = _Block(word, _parse_pipe(_tokens(rest)))
            stack[-1][2].append(block)
            stack.append((word, block, block.body))
        elif word == "else":
            kind, block, _ = stack[-1]
            if kind not in ("if", "range", "with", "if-chained"):
                raise TemplateError("{{else}} outside if/range/with")
            stack[-1] = (kind, block, block.else_body)
            if rest.startswith("if "):
                inner = _Block("if", _parse_pipe(_tokens(rest[3:])))
                block.else_body.append(inner)
                stack.append(("if-chained", inner, inner.body))
        elif word == "end":
            if len(stack) == 1:
                raise TemplateError("unexpected {{end}}")
            kind, _, _ = stack.pop()
            while kind == "if-chained":
                kind, _, _ = stack.pop()
        elif word == "define":
            name = _unquote(rest)
            body_list: list = []
            defines[name] = body_list
            stack.append(("define", name, body_list))
        elif word in ("template", "block"):
            toks = _tokens(rest)
            name = _unquote(toks[0][1])
            node = _Call(name, _parse_pipe(toks[1:]) if len(toks) > 1 else None)
            stack[-1][2].append(node)
        else:
            stack[-1][2].append(_parse_pipe(_tokens(body)))
    tail = src[pos:]
    if "{{" in tail:
        raise TemplateError("unclosed action")
    if pending_trim:
        tail = tail.lstrip()
    if tail:
        root.append(_Text(tail))
    if len(stack) != 1:
        raise TemplateError(f"unclosed {{{{{stack[-1][0]}}}}} block")
    return root, defines


# --- functions -------------------------------------------------------------------------------

def humanize(v: Any) -> str:
    v = float(v)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return f"{v:.4g}"
    if abs(v) >= 1:
        prefixes = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"]
        i = 0
        while abs(v) >= 1000 and i < len(prefixes) - 1:
            v /= 1000
            i += 1
        return f"{v:.4g}{prefixes[i]}"
    prefixes = ["", "m", "u", "n", "p", "f", "a", "z", "y"]
    i = 0
    while abs(v) < 1 and i < len(prefixes) - 1:
        v *= 1000
        i += 1
    return f"{v:.4g}{prefixes[i]}"


def humanize_duration(v: Any) -> str:
    v = float(v)
    if math.isnan(v) or math.isinf(v):
        return f"{v:.4g}"
    if v == 0:
        return "0s"
    if abs(v) < 1:
        return f"{v * 1000:.4g}ms"
    sign = "-" if v < 0 else ""
    v = abs(v)
    days, rem = divmod(int(v), 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    frac = v - int(v)
    if days:
        return f"{sign}{days}d {hours}h {minutes}m {secs}s"
    if hours:
        return f"{sign}{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{sign}{minutes}m {secs}s"
    return f"{sign}{secs + frac:.4g}s"


def _printf(fmt: str, *args: Any) -> str:
    fmt = re.sub(r"%v", "%s", fmt)
    fmt = re.sub(r"%q", '"%s"', fmt)
    try:
        return fmt % args
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"printf {fmt!r}: {exc}") from None


def _truth(v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, int | float | str | list | tuple | dict | set):
        return bool(v)
    return True


FUNCS: dict[str, Callable[..., Any]] = {
    "humanize": humanize,
    "humanize1024": lambda v: humanize(v),
    "humanizePercentage": lambda v: f"{float(v) * 100:.4g}%",
    "humanizeDuration": humanize_duration,
    "humanizeTimestamp": lambda v: datetime.utcfromtimestamp(float(v)).isoformat() + "Z",
    "printf": _printf,
    "print": lambda *a: "".join(str(x) for x in a),
    "toUpper": lambda s: str(s).upper(),
    "toLower": lambda s: str(s).lower(),
    "title": lambda s: str(s).title(),
    "trimSpace": lambda s: str(s).strip(),
    "join": lambda sep, items: str(sep).join(str(x) for x in items),
    "safeHtml": lambda s: str(s),
    "html": lambda s: html.escape(str(s)),
    "urlquery": lambda s: __import__("urllib.parse").parse.quote_plus(str(s)),
    "reReplaceAll": lambda pattern, repl, text: re.sub(pattern, re.sub(r"\$(\d+)", r"\\\1", repl), str(text)),
    "match": lambda pattern, text: re.search(pattern, str(text)) is not None,
    "stripPort": lambda s: str(s).rsplit(":", 1)[0] if ":" in str(s) else str(s),
    "len": lambda v: len(v),
    "index": lambda v, k: (v.get(k, "") if isinstance(v, Mapping) else v[int(k)]),
    "eq": lambda a, *bs: any(a == b for b in bs),
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "not": lambda v: not _truth(v),
    "toJson": lambda v: __import__("json").dumps(v, default=str),
    "since": lambda t: (datetime.now(t.tzinfo) - t).total_seconds(),
}


# --- execution -------------------------------------------------------------------------------

def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping) and name in obj:
        return obj[name]
    if hasattr(obj, name) and not name.startswith("_"):
        v = getattr(obj, name)
        return v() if callable(v) else v
    if isinstance(obj, Mapping):
        return ""  # Go prints "<no value>"; an empty string reads better in messages
    raise TemplateError(f"can't evaluate field {name} in type {type(obj).__name__}")


class _Exec:
    def __init__(self, defines: dict[str, list], out: list[str]) -> None:
        self.defines = defines
        self.out = out

    def run(self, nodes: list, dot: Any, scope: dict[str, Any]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                self.out.append(node.text)
            elif isinstance(node, _Pipe):
                value = self.pipe(node, dot, scope)
                if not node.decl:
                    self.out.append(_str(value))
            elif isinstance(node, _Block):
                self.block(node, dot, scope)
            elif isinstance(node, _Call):
                body = self.defines.get(node.name)
                if body is None:
                    raise TemplateError(f'no such template "{node.name}"')
                arg = self.pipe(node.pipe, dot, scope) if node.pipe else None
                self.run(body, arg, {"$": arg})

    def block(self, node: _Block, dot: Any, scope: dict[str, Any]) -> None:
        inner = dict(scope)
        value = self.pipe(node.pipe, dot, inner)
        if node.kind == "if":
            self.run(node.body if _truth(value) else node.else_body, dot, inner)
        elif node.kind == "with":
            if _truth(value):
                self.run(node.body, value, inner)
            else:
                self.run(node.else_body, dot, inner)
        else:
            items = list(value.items()) if isinstance(value, Mapping) else list(enumerate(value or []))
            if isinstance(value, Mapping):
                items.sort()
            if not items:
                self.run(node.else_body, dot, inner)
            for k, v in items:
                if len(node.pipe.decl) == 2:
                    inner[node.pipe.decl[0]], inner[node.pipe.decl[1]] = k, v
                elif node.pipe.decl:
                    inner[node.pipe.decl[0]] = v
                self.run(node.body, v, inner)

    def pipe(self, pipe: _Pipe, dot: Any, scope: dict[str, Any]) -> Any:
        value: Any = None
        first = True
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, scope, None if first else (value,))
            first = False
        # `range $i, $v := x` binds per item (in `block`); here plain declarations
        if len(pipe.decl) == 1:
            scope[pipe.decl[0]] = value
        return value

    def command(self, cmd: list, dot: Any, scope: dict[str, Any], piped: tuple | None) -> Any:
        head = cmd[0]
        if isinstance(head, tuple) and head[0] == "ident" and head[1] not in ("true", "false", "nil"):
            name = head[1]
            fn = FUNCS.get(name)
            if name == "and":
                args = [self.operand(a, dot, scope) for a in cmd[1:]] + list(piped or ())
                result: Any = True
                for a in args:
                    result = a
                    if not _truth(a):
                        return a
                return result
            if name == "or":
                args = [self.operand(a, dot, scope) for a in cmd[1:]] + list(piped or ())
                for a in args:
                    if _truth(a):
                        return a
                return args[-1] if args else False
            if fn is None:
                raise TemplateError(f'function "{name}" not defined')
            args = [self.operand(a, dot, scope) for a in cmd[1:]] + list(piped or ())
            try:
                return fn(*args)
            except TemplateError:
                raise
            except Exception as exc:
                raise TemplateError(f"error calling {name}: {exc}") from None
        if len(cmd) > 1 or piped:
            raise TemplateError(f"can't give argument to non-function {head}")
        return self.operand(head, dot, scope)

    def operand(self, tok: Any, dot: Any, scope: dict[str, Any]) -> Any:
        if isinstance(tok, _Pipe):
            return self.pipe(tok, dot, scope)
        kind, text = tok
        if kind == "str":
            return _unquote(text)
        if kind == "num":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "field":
            value = dot
            for part in text.split(".")[1:]:
                if part:
                    value = _field(value, part)
            return value
        if kind == "var":
            name, *parts = text.split(".")
            if name not in scope:
                raise TemplateError(f"undefined variable: {name}")
            value = scope[name]
            for part in parts:
                value = _field(value, part)
            return value
        if kind == "ident":
            if text in ("true", "false"):
                return text == "true"
            if text == "nil":
                return None
            fn = FUNCS.get(text)
            if fn is not None:
                return fn()
        raise TemplateError(f"unexpected {text!r} in template")


def _str(v: Any) -> str:
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v == int(v) and abs(v) < 1e21:
            return str(int(v))
        return repr(v)
    if isinstance(v, Mapping):
        return "map[" + " ".join(f"{k}:{_str(x)}" for k, x in sorted(v.items())) + "]"
    if isinstance(v, list | tuple):
        return "[" + " ".join(_str(x) for x in v) + "]"
    return str(v)


class Template:
    """A parsed template set: a main body plus named `define`s (e.g. `slack.default.title`)."""

    def __init__(self, text: str = "", defines: dict[str, list] | None = None) -> None:
        self.defines: dict[str, list] = dict(defines or {})
        self.root, _ = parse(text, self.defines)

    def add(self, text: str) -> None:
        """Add the `define`s of another file (Alertmanager's `templates:` files)."""
        parse(text, self.defines)

    def execute(self, data: Any, scope: dict[str, Any] | None = None) -> str:
        out: list[str] = []
        s = {"$": data}
        if scope:
            s.update(scope)
        _Exec(self.defines, out).run(self.root, data, s)
        return "".join(out)

    def render(self, text: str, data: Any, scope: dict[str, Any] | None = None) -> str:
        """Execute `text` with this set's `define`s available to `{{ template }}`."""
        root, _ = parse(text, dict(self.defines))
        out: list[str] = []
        s = {"$": data}
        if scope:
            s.update(scope)
        _Exec(self.defines, out).run(root, data, s)
        return "".join(out)


def expand_rule_template(text: str, labels: Mapping[str, str], value: float,
                         external_labels: Mapping[str, str] | None = None, external_url: str = "") -> str:
    """An annotation or label value of a Prometheus rule, with `$labels`, `$value`,
    `$externalLabels`, `$externalURL` and `.Labels`/`.Value` as Prometheus defines them."""
    if "{{" not in text:
        return text
    data = {"Labels": dict(labels), "Value": value, "ExternalLabels": dict(external_labels or {}),
            "ExternalURL": external_url}
    scope = {"$labels": data["Labels"], "$value": value, "$externalLabels": data["ExternalLabels"],
             "$externalURL": external_url}
    return Template(text).execute(data, scope)


def check(text: str) -> None:
    """Raise TemplateError if `text` does not parse."""
    parse(text)
