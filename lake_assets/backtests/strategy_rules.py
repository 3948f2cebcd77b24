"""The strategy rule language: a tokenizer, a recursive-descent parser and a compiler to polars expressions.

Rules are data, never code: "RSI(rsi_period) crosses above oversold and close > SMA(200)" becomes a boolean
`pl.Expr` over bar/feature columns and the indicator catalogue; nothing is ever `eval`ed. Every error is a
`RuleError` that names the offending token and its 0-based character position in the rule.

Grammar (lowest precedence first; keywords are case-insensitive):

    rule       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := sum [(">" | ">=" | "<" | "<=" | "==" | "!=" | "crosses" ("above" | "below")) sum]
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | postfix
    postfix    := primary ("[" (INT | IDENT) "]")*          # n bars ago; negative lookbacks are refused
    primary    := NUMBER | STRING | "(" rule ")" | IDENT ["(" args ")"] [["."] OUTPUT]

An identifier is, in this order: true/false, a strategy parameter, a column of the frame, an indicator with
default parameters (e.g. `OBV`, `MACD histogram`). A call is a builtin (highest, lowest, mean, std, sum, change,
zscore, abs, min, max; windows skip gap rows and need the catalogue's minimum fill, like the indicators) or an
indicator from `lake_assets.features.indicators.INDICATORS` (case-insensitive).
Indicator arguments are numbers or parameter names (bound to the indicator's numeric parameters in order) and,
optionally first, a column name for indicators computed on a column (`SMA(volume, 20)`).
Comparisons are not chained ("a < b < c" is an error) and `crosses` compares with the previous bar:
`a crosses above b` = a > b now and a <= b one bar earlier.

Rules come from files anyone can edit, so parsing is bounded: a rule longer than MAX_RULE_LENGTH characters is
refused before it is tokenized, tokenizing stops at MAX_TOKENS tokens, and nesting (parentheses, call arguments,
`not` and unary minus chains, `[n]` lookbacks) deeper than MAX_DEPTH is refused; each is a `RuleError` naming the
limit. `and`/`or`/arithmetic chains are compiled iteratively, so a long chain costs no recursion; number literals,
lookbacks and windows must be finite and at most MAX_BARS bars.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

# --- errors --------------------------------------------------------------------------------


# Limits of the parser (a rule is untrusted input: bounded time, memory and recursion whatever it holds).
MAX_RULE_LENGTH = 32_768  # characters, checked before tokenizing (real rules are one line)
MAX_TOKENS = 400
MAX_DEPTH = 32  # nesting: parentheses, call arguments, `not`s, unary minus/plus, `[n]` lookbacks
MAX_BARS = 1_000_000  # largest lookback or window, in bars
_SHOWN = 120  # a longer rule is shown as an excerpt around the error position


class RuleError(ValueError):
    """A malformed rule or an unknown name; carries the token and its position in the rule text."""

    def __init__(self, rule: str, position: int, token: str, problem: str) -> None:
        self.rule, self.position, self.token, self.problem = rule, position, token, problem
        text, offset = _excerpt(rule, position)
        caret = " " * offset + "^"
        if len(token) > 40:
            token = token[:40] + "..."
        shown = repr(token) if token else "end of rule"
        super().__init__(f"{problem} at position {position} (token {shown})\n  {text}\n  {caret}")


def _excerpt(rule: str, position: int) -> tuple[str, int]:
    """The rule (or, when long, a window of it around `position`) and the caret's offset in what is shown."""
    if len(rule) <= _SHOWN:
        return rule, position
    start = max(0, min(position - _SHOWN // 2, len(rule) - _SHOWN))
    text = rule[start : start + _SHOWN]
    prefix = "..." if start > 0 else ""
    suffix = "..." if start + _SHOWN < len(rule) else ""
    return prefix + text + suffix, len(prefix) + position - start


# --- tokens --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # NUM, IDENT, STR, OP, END
    text: str
    pos: int


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<str>"[^"]*"|'[^']*')
  | (?P<op>>=|<=|==|!=|[<>+\-*/()\[\],.])
    """,
    re.VERBOSE,
)

KEYWORDS = frozenset({"and", "or", "not", "crosses", "above", "below", "true", "false"})
COMPARATORS = (">", ">=", "<", "<=", "==", "!=")


def check_length(rule: str) -> None:
    """Refuse a rule longer than MAX_RULE_LENGTH before any work is spent on it."""
    if len(rule) > MAX_RULE_LENGTH:
        raise RuleError(
            rule, MAX_RULE_LENGTH, rule[MAX_RULE_LENGTH : MAX_RULE_LENGTH + 10],
            f"rule too long: {len(rule):,} characters, the limit (MAX_RULE_LENGTH) is {MAX_RULE_LENGTH:,}",
        )  # fmt: skip


def tokenize(rule: str) -> list[Token]:
    """Split a rule into tokens; an unexpected character is reported with its position. A rule over the length
    limit is refused first, and tokenizing stops at the token limit."""
    check_length(rule)
    return list(_tokens(rule))


def _tokens(rule: str) -> Iterator[Token]:
    """The tokens of a rule, one at a time (so the parser stops at its first error), then one END token; more than
    MAX_TOKENS tokens is an error at the first token over the limit."""
    count = 0
    pos = 0
    while pos < len(rule):
        m = _TOKEN_RE.match(rule, pos)
        if m is None:
            ch = rule[pos]
            if ch in "\"'":
                raise RuleError(rule, pos, rule[pos:], "unterminated string")
            raise RuleError(rule, pos, ch, f"unexpected character {ch!r}")
        kind = m.lastgroup
        text = m.group()
        pos = m.end()
        if kind == "ws":
            continue
        count += 1
        if count > MAX_TOKENS:
            raise RuleError(
                rule, m.start(), text, f"rule too long: more than {MAX_TOKENS} tokens (the limit, MAX_TOKENS)"
            )
        if kind == "str":
            yield Token("STR", text[1:-1], m.start())
        else:
            yield Token({"num": "NUM", "ident": "IDENT", "op": "OP"}[str(kind)], text, m.start())
    yield Token("END", "", len(rule))


# --- AST -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    value: float
    pos: int
    text: str


@dataclass(frozen=True)
class Str:
    value: str
    pos: int


@dataclass(frozen=True)
class Name:
    name: str
    pos: int
    output: Name | None = None  # `MACD histogram` / `BBANDS.upper`


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]
    pos: int
    output: Name | None = None


@dataclass(frozen=True)
class Lookback:
    operand: Node
    bars: Num | Name
    pos: int


@dataclass(frozen=True)
class Unary:
    op: str  # "-" or "not"
    operand: Node
    pos: int


@dataclass(frozen=True)
class Binary:
    op: str  # arithmetic, comparison, "and", "or", "crosses above", "crosses below"
    left: Node
    right: Node
    pos: int


Node = Num | Str | Name | Call | Lookback | Unary | Binary


# --- parser --------------------------------------------------------------------------------


class _Parser:
    def __init__(self, rule: str) -> None:
        self.rule = rule
        check_length(rule)
        self._stream = _tokens(rule)  # pulled one token at a time: the first error (e.g. the depth limit) stops it
        self._tok = next(self._stream)
        self.depth = 0

    def enter(self, tok: Token) -> None:
        """One more level of nesting; deeper than MAX_DEPTH is an error at `tok`."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"rule nested too deeply: more than {MAX_DEPTH} levels (the limit, MAX_DEPTH)", tok)

    @property
    def tok(self) -> Token:
        return self._tok

    def error(self, problem: str, tok: Token | None = None) -> RuleError:
        tok = tok or self.tok
        return RuleError(self.rule, tok.pos, tok.text, problem)

    def advance(self) -> Token:
        tok = self._tok
        if tok.kind != "END":
            self._tok = next(self._stream)
        return tok

    def is_kw(self, word: str) -> bool:
        return self.tok.kind == "IDENT" and self.tok.text.lower() == word

    def is_op(self, *ops: str) -> bool:
        return self.tok.kind == "OP" and self.tok.text in ops

    def expect_op(self, op: str, what: str) -> Token:
        if not self.is_op(op):
            raise self.error(f"expected {op!r} {what}")
        return self.advance()

    def parse(self) -> Node:
        if self.tok.kind == "END":
            raise self.error("empty rule")
        node = self.parse_or()
        if self.tok.kind != "END":
            if self.tok.kind == "IDENT" and self.tok.text.lower() not in KEYWORDS:
                raise self.error("unexpected name (missing 'and'/'or' or an operator?)")
            raise self.error("unexpected token")
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.is_kw("or"):
            tok = self.advance()
            node = Binary("or", node, self.parse_and(), tok.pos)
        return node

    def parse_and(self) -> Node:
        node = self.parse_not()
        while self.is_kw("and"):
            tok = self.advance()
            node = Binary("and", node, self.parse_not(), tok.pos)
        return node

    def parse_not(self) -> Node:
        if self.is_kw("not"):
            tok = self.advance()
            self.enter(tok)
            node = Unary("not", self.parse_not(), tok.pos)
            self.depth -= 1
            return node
        return self.parse_comparison()

    def parse_comparison(self) -> Node:
        left = self.parse_sum()
        op_tok = self.tok
        if self.is_op(*COMPARATORS):
            op = self.advance().text
        elif self.is_kw("crosses"):
            self.advance()
            if not (self.is_kw("above") or self.is_kw("below")):
                raise self.error("expected 'above' or 'below' after 'crosses'")
            op = "crosses " + self.advance().text.lower()
        else:
            return left
        right = self.parse_sum()
        if self.is_op(*COMPARATORS) or self.is_kw("crosses"):
            raise self.error("chained comparison; combine comparisons with 'and'")
        return Binary(op, left, right, op_tok.pos)

    def parse_sum(self) -> Node:
        node = self.parse_product()
        while self.is_op("+", "-"):
            tok = self.advance()
            node = Binary(tok.text, node, self.parse_product(), tok.pos)
        return node

    def parse_product(self) -> Node:
        node = self.parse_unary()
        while self.is_op("*", "/"):
            tok = self.advance()
            node = Binary(tok.text, node, self.parse_unary(), tok.pos)
        return node

    def parse_unary(self) -> Node:
        if self.is_op("-", "+"):
            tok = self.advance()
            self.enter(tok)
            operand = self.parse_unary()
            self.depth -= 1
            return Unary("-", operand, tok.pos) if tok.text == "-" else operand
        return self.parse_postfix()

    def parse_postfix(self) -> Node:
        node = self.parse_primary()
        start_depth = self.depth
        while self.is_op("["):
            open_tok = self.advance()
            self.enter(open_tok)  # each lookback wraps the node once more
            tok = self.tok
            if tok.kind == "NUM":
                if not re.fullmatch(r"\d+", tok.text):
                    raise self.error("a lookback must be a whole number of bars")
                if len(tok.text) > 7 or int(tok.text) > MAX_BARS:
                    raise self.error(f"a lookback may be at most {MAX_BARS:,} bars (the limit, MAX_BARS)")
                bars: Num | Name = Num(float(tok.text), tok.pos, tok.text)
            elif tok.kind == "IDENT" and tok.text.lower() not in KEYWORDS:
                bars = Name(tok.text, tok.pos)
            elif self.is_op("-"):
                raise self.error("negative lookback would read future bars")
            else:
                raise self.error("expected a number of bars or a parameter name inside '[ ]'")
            self.advance()
            self.expect_op("]", "to close the lookback")
            node = Lookback(node, bars, open_tok.pos)
        self.depth = start_depth
        return node

    def parse_primary(self) -> Node:
        tok = self.tok
        if tok.kind == "NUM":
            value = float(tok.text)
            if not math.isfinite(value):
                raise self.error("number out of range")
            self.advance()
            return Num(value, tok.pos, tok.text)
        if tok.kind == "STR":
            self.advance()
            return Str(tok.text, tok.pos)
        if self.is_op("("):
            self.advance()
            self.enter(tok)
            node = self.parse_or()
            self.expect_op(")", "to close '('")
            self.depth -= 1
            return node
        if tok.kind == "IDENT":
            if tok.text.lower() in KEYWORDS - {"true", "false"}:
                raise self.error(f"unexpected keyword {tok.text.lower()!r}")
            self.advance()
            if self.is_op("("):
                self.enter(self.advance())
                args: list[Node] = []
                if not self.is_op(")"):
                    args.append(self.parse_or())
                    while self.is_op(","):
                        self.advance()
                        args.append(self.parse_or())
                self.expect_op(")", f"to close the arguments of {tok.text}")
                self.depth -= 1
                return Call(tok.text, tuple(args), tok.pos, self.parse_output())
            return Name(tok.text, tok.pos, self.parse_output())
        if tok.kind == "END":
            raise self.error("unexpected end of rule")
        raise self.error("unexpected token")

    def parse_output(self) -> Name | None:
        """`MACD(12, 26, 9) histogram` or `BBANDS(20, 2).upper`: the output of a multi-output indicator."""
        if self.is_op("."):
            self.advance()
            if self.tok.kind != "IDENT":
                raise self.error("expected an output name after '.'")
            tok = self.advance()
            return Name(tok.text, tok.pos)
        if self.tok.kind == "IDENT" and self.tok.text.lower() not in KEYWORDS:
            tok = self.advance()
            return Name(tok.text, tok.pos)
        return None


def parse_rule(rule: str) -> Node:
    """Parse a rule into its syntax tree (names are resolved later, by `compile_rule`)."""
    if not isinstance(rule, str):
        raise TypeError(f"a rule must be a string, got {type(rule).__name__}")
    check_length(rule)  # before hashing it for the cache
    return _parse_cached(rule)


@functools.lru_cache(maxsize=4096)
def _parse_cached(rule: str) -> Node:
    # trees are frozen dataclasses, so one parse serves every optimiser trial (a rule is re-compiled per trial
    # with new parameter values, ~1,700 times in the demo's walk-forward); errors are raised, never cached
    return _Parser(rule).parse()


# --- compiler ------------------------------------------------------------------------------

NUM, BOOL, STR, ANY = "number", "condition", "text", "any"

OUTPUT_ALIASES = {
    "histogram": "hist",
    "middle": "mid",
    "basis": "mid",
    "line": "macd",
    "percent_b": "pctb",
    "bandwidth": "width",
}

BUILTINS: dict[str, tuple[int, int]] = {  # name -> (min args, max args)
    "highest": (2, 2),
    "lowest": (2, 2),
    "mean": (2, 2),
    "std": (2, 2),
    "sum": (2, 2),
    "change": (1, 2),
    "zscore": (2, 2),
    "abs": (1, 1),
    "min": (2, 2),
    "max": (2, 2),
}


@dataclass(frozen=True)
class IndicatorInfo:
    """What the compiler needs to know of one catalogue indicator."""

    name: str
    params: dict[str, Any]  # name -> default, in positional order
    outputs: tuple[str, ...]
    build: Callable[[dict[str, Any]], dict[str, pl.Expr]]

    @property
    def column_params(self) -> list[str]:
        return [k for k, v in self.params.items() if isinstance(v, str)]

    @property
    def numeric_params(self) -> list[str]:
        return [k for k, v in self.params.items() if not isinstance(v, str)]


def _first_attr(obj: Any, names: tuple[str, ...], default: Any = None) -> Any:
    for n in names:
        if isinstance(obj, Mapping) and n in obj:
            return obj[n]
        if hasattr(obj, n):
            return getattr(obj, n)
    return default


def _as_info(name: str, defn: Any) -> IndicatorInfo:
    params = _first_attr(defn, ("params", "defaults", "param_defaults", "parameters"), {}) or {}
    if not isinstance(params, Mapping):  # a sequence of (name, default) or of objects with name/default
        params = {
            (p[0] if isinstance(p, tuple) else p.name): (p[1] if isinstance(p, tuple) else p.default) for p in params
        }
    outputs = tuple(_first_attr(defn, ("outputs", "output_names"), ()) or ())
    build = _first_attr(defn, ("build",))
    if build is None:
        raise TypeError(f"indicator {name} has no build(params) function")
    return IndicatorInfo(name.upper(), dict(params), outputs, build)


def indicator_catalogue() -> dict[str, IndicatorInfo]:
    """The indicator catalogue of the features layer, keyed by upper-case name."""
    from lake_assets.features.indicators import INDICATORS

    return {name.upper(): _as_info(name, defn) for name, defn in INDICATORS.items()}


def _kind_of_dtype(dtype: Any) -> str:
    if dtype is None:
        return ANY
    if dtype == pl.Boolean:
        return BOOL
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum | pl.Categorical):
        return STR
    if dtype.is_numeric():
        return NUM
    return ANY


def _kind_of_value(value: Any) -> str:
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int | float):
        return NUM
    if isinstance(value, str):
        return STR
    return ANY


class _Compiler:
    def __init__(
        self,
        rule: str,
        params: Mapping[str, Any],
        columns: Mapping[str, Any] | None,
        indicators: Mapping[str, IndicatorInfo] | None,
        column_ok: Callable[[str], bool] | None,
        registry: dict[str, pl.Expr] | None = None,
    ) -> None:
        self.rule = rule
        self.params = dict(params)
        self.columns = columns
        self.column_ok = column_ok
        self._indicators = indicators
        self.registry = registry

    @property
    def indicators(self) -> Mapping[str, IndicatorInfo]:
        if self._indicators is None:
            self._indicators = indicator_catalogue()
        return self._indicators

    def error(self, pos: int, token: str, problem: str) -> RuleError:
        return RuleError(self.rule, pos, token, problem)

    def need(self, node: Node, got: tuple[pl.Expr, str], *kinds: str) -> pl.Expr:
        expr, kind = got
        if kind != ANY and kind not in kinds:
            want = " or ".join(kinds)
            raise self.error(node.pos, _token_text(self.rule, node), f"expected a {want}, got a {kind}")
        return expr

    def is_column(self, name: str) -> bool:
        if self.columns is not None and name in self.columns:
            return True
        return self.column_ok is not None and self.column_ok(name)

    def column_kind(self, name: str) -> str:
        return _kind_of_dtype(self.columns.get(name)) if isinstance(self.columns, Mapping) else ANY

    # - nodes -
    def compile(self, node: Node) -> tuple[pl.Expr, str]:
        if isinstance(node, Num):
            return pl.lit(node.value), NUM
        if isinstance(node, Str):
            return pl.lit(node.value), STR
        if isinstance(node, Name):
            return self.compile_name(node)
        if isinstance(node, Call):
            return self.compile_call(node)
        if isinstance(node, Lookback):
            expr, kind = self.compile(node.operand)
            n = self.bars(node.bars)
            return (expr if self.constant_node(node.operand) else expr.shift(n)), kind
        if isinstance(node, Unary):
            if node.op == "not":
                return ~self.need(node.operand, self.compile(node.operand), BOOL), BOOL
            return -self.need(node.operand, self.compile(node.operand), NUM), NUM
        return self.compile_binary(node)

    def compile_binary(self, node: Binary) -> tuple[pl.Expr, str]:
        op = node.op
        if op in _CHAINS:
            return self.compile_chain(node)
        left, right = self.compile(node.left), self.compile(node.right)
        if op.startswith("crosses"):
            a, b = _num(self.need(node.left, left, NUM)), _num(self.need(node.right, right, NUM))
            a1 = a if self.constant_node(node.left) else a.shift(1)
            b1 = b if self.constant_node(node.right) else b.shift(1)
            if op == "crosses above":
                return (a > b) & (a1 <= b1), BOOL
            return (a < b) & (a1 >= b1), BOOL
        if op in ("==", "!=") and STR in (left[1], right[1]):
            a, b = self.need(node.left, left, STR), self.need(node.right, right, STR)
        elif op in ("==", "!=") and BOOL in (left[1], right[1]):
            a, b = self.need(node.left, left, BOOL), self.need(node.right, right, BOOL)
        else:
            a, b = _num(self.need(node.left, left, NUM)), _num(self.need(node.right, right, NUM))
        cmp = {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b, "==": a == b, "!=": a != b}[op]
        return cmp, BOOL

    def compile_chain(self, node: Binary) -> tuple[pl.Expr, str]:
        """A left-associative chain of one precedence level (`a and b and c`, `a + b - c`), without recursion
        along the chain: its operands are compiled left to right and folded."""
        group = _CHAINS[node.op]
        spine: list[Binary] = []
        first: Node = node
        while isinstance(first, Binary) and first.op in group:
            spine.append(first)
            first = first.left
        want = BOOL if node.op in ("and", "or") else NUM
        acc = self.need(first, self.compile(first), want)
        for link in reversed(spine):
            b = self.need(link.right, self.compile(link.right), want)
            acc = _FOLD[link.op](acc, b)
        return acc, want

    def constant_node(self, node: Node) -> bool:
        """True when a node reads no column (literals, parameters): shifting it would only produce nulls."""
        for n in _walk(node):
            if isinstance(n, Call):
                return False
            if isinstance(n, Name) and not (
                n.output is None and (n.name in self.params or n.name.lower() in ("true", "false"))
            ):
                return False
        return True

    def shared(self, info: IndicatorInfo, bound: Mapping[str, Any], output: str, expr: pl.Expr) -> pl.Expr:
        """With a `shared` registry, an indicator output becomes a temporary column computed once per frame."""
        if self.registry is None:
            return expr
        parts = [info.name.lower(), *(str(v) for v in bound.values()), output]
        name = "__" + "_".join(parts)
        self.registry.setdefault(name, expr)
        return pl.col(name)

    def bars(self, node: Num | Name) -> int:
        if isinstance(node, Num):
            return int(node.value)
        if node.name not in self.params:
            raise self.error(node.pos, node.name, "unknown parameter in lookback")
        value = self.params[node.name]
        if not _whole(value):
            raise self.error(node.pos, node.name, f"lookback parameter must be a whole number, got {value!r}")
        if value < 0:
            raise self.error(node.pos, node.name, f"negative lookback ({value}) would read future bars")
        if value > MAX_BARS:
            raise self.error(node.pos, node.name, f"a lookback may be at most {MAX_BARS:,} bars, got {value}")
        return int(value)

    def compile_name(self, node: Name) -> tuple[pl.Expr, str]:
        name = node.name
        if node.output is None:
            if name.lower() in ("true", "false"):
                return pl.lit(name.lower() == "true"), BOOL
            if name in self.params:
                value = self.params[name]
                return pl.lit(value), _kind_of_value(value)
            if self.is_column(name):
                return pl.col(name), self.column_kind(name)
        if name.upper() in self.indicators:
            return self.indicator(self.indicators[name.upper()], (), node)
        if node.output is not None and (name in self.params or self.is_column(name)):
            out = node.output
            raise self.error(out.pos, out.name, f"{name!r} is not an indicator and has no output {out.name!r}")
        raise self.error(node.pos, name, "unknown name (not a parameter, column or indicator)")

    def compile_call(self, node: Call) -> tuple[pl.Expr, str]:
        lname = node.name.lower()
        if lname in BUILTINS and node.name.upper() not in self.indicators:
            if node.output is not None:
                raise self.error(node.output.pos, node.output.name, f"{lname}() has no outputs")
            return self.builtin(node)
        if node.name.upper() in self.indicators:
            return self.indicator(self.indicators[node.name.upper()], node.args, node)
        raise self.error(node.pos, node.name, "unknown indicator or function")

    def constant(self, node: Node, what: str) -> Any:
        """A number literal or a parameter name (also `-3`)."""
        if isinstance(node, Num):
            return int(node.value) if node.text.isdigit() else node.value
        if isinstance(node, Unary) and node.op == "-" and isinstance(node.operand, Num):
            return -self.constant(node.operand, what)
        if isinstance(node, Name) and node.output is None and node.name in self.params:
            return self.params[node.name]
        tok = _token_text(self.rule, node)
        raise self.error(node.pos, tok, f"{what} must be a number or a parameter name")

    def window(self, node: Node, fn: str) -> int:
        value = self.constant(node, f"the window of {fn}()")
        if not _whole(value) or value < 1:
            raise self.error(node.pos, _token_text(self.rule, node), f"window must be a whole number >= 1, got {value}")
        if value > MAX_BARS:
            raise self.error(node.pos, _token_text(self.rule, node), f"a window may be at most {MAX_BARS:,} bars")
        return int(value)

    def builtin(self, node: Call) -> tuple[pl.Expr, str]:
        fn = node.name.lower()
        lo, hi = BUILTINS[fn]
        if not lo <= len(node.args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise self.error(node.pos, node.name, f"{fn}() takes {want} arguments, got {len(node.args)}")
        x = _num(self.need(node.args[0], self.compile(node.args[0]), NUM))
        if fn == "abs":
            return x.abs(), NUM
        if fn in ("min", "max"):
            y = self.need(node.args[1], self.compile(node.args[1]), NUM)
            return (pl.min_horizontal(x, y) if fn == "min" else pl.max_horizontal(x, y)), NUM
        n = self.window(node.args[1], fn) if len(node.args) > 1 else 1
        if fn == "change":
            return x - x.shift(n), NUM
        if fn in ("std", "zscore") and n < 2:
            arg = node.args[1]
            raise self.error(arg.pos, _token_text(self.rule, arg), f"{fn}() needs a window >= 2")
        from lake_assets.features import indicators as ind  # same window semantics as the catalogue

        rolling = {
            "highest": ind.rolling_max,
            "lowest": ind.rolling_min,
            "mean": ind.rolling_mean,
            "sum": ind.rolling_sum,
            "std": ind.rolling_std,
            "zscore": ind.rolling_zscore,
        }[fn]
        return _num(rolling(x, n)), NUM

    def indicator(self, info: IndicatorInfo, args: tuple[Node, ...], node: Name | Call) -> tuple[pl.Expr, str]:
        bound: dict[str, Any] = dict(info.params)
        rest = list(args)
        col_params = info.column_params
        if rest and col_params and isinstance(rest[0], Name) and rest[0].output is None:
            first = rest[0]
            if first.name not in self.params and self.is_column(first.name):
                bound[col_params[0]] = first.name
                rest.pop(0)
        numeric = info.numeric_params
        if len(rest) > len(numeric):
            extra = rest[len(numeric)]
            sig = ", ".join(info.params)
            raise self.error(extra.pos, _token_text(self.rule, extra), f"too many arguments for {info.name}({sig})")
        for pname, arg in zip(numeric, rest, strict=False):
            value = self.constant(arg, f"argument {pname!r} of {info.name}")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise self.error(arg.pos, _token_text(self.rule, arg), f"{pname} must be a number, got {value!r}")
            bound[pname] = value
        try:
            outputs = info.build(bound)
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            problem = exc.args[0] if exc.args else exc
            raise self.error(node.pos, node.name, f"invalid parameters for {info.name}: {problem}") from exc
        names = list(outputs)
        chosen: str | None = None
        if node.output is not None:
            want = node.output.name.lower()
            want = OUTPUT_ALIASES.get(want, want)
            if want not in outputs:
                raise self.error(
                    node.output.pos, node.output.name, f"{info.name} has no output {node.output.name!r}; has {names}"
                )
            chosen = want
        elif len(outputs) == 1:
            chosen = names[0]
        elif info.name.lower() in outputs:
            chosen = info.name.lower()
        if chosen is not None:
            return self.shared(info, bound, chosen, outputs[chosen]), NUM
        raise self.error(
            node.pos, node.name, f"{info.name} has several outputs {names}; name one (e.g. {info.name} {names[0]})"
        )


_CHAINS: dict[str, frozenset[str]] = {
    "and": frozenset({"and"}),
    "or": frozenset({"or"}),
    "+": frozenset({"+", "-"}),
    "-": frozenset({"+", "-"}),
    "*": frozenset({"*", "/"}),
    "/": frozenset({"*", "/"}),
}
_FOLD: dict[str, Callable[[pl.Expr, pl.Expr], pl.Expr]] = {
    "and": lambda a, b: a & b,
    "or": lambda a, b: a | b,
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
}


def _whole(value: Any) -> bool:
    """A finite whole number (not a bool)."""
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and float(value).is_integer()
    )


def _walk(node: Node) -> list[Node]:
    """Every node of a tree (pre-order, iteratively: a long chain costs no recursion); lookback bars included."""
    out: list[Node] = []
    stack: list[Node] = [node]
    while stack:
        n = stack.pop()
        out.append(n)
        if isinstance(n, Call):
            stack.extend(reversed(n.args))
        elif isinstance(n, Lookback):
            stack.extend((n.bars, n.operand))
        elif isinstance(n, Unary):
            stack.append(n.operand)
        elif isinstance(n, Binary):
            stack.extend((n.right, n.left))
    return out


def _num(expr: pl.Expr) -> pl.Expr:
    """NaN (the catalogue's missing marker) becomes null: polars orders NaN above every number, nulls stay null."""
    return expr.fill_nan(None)


def _token_text(rule: str, node: Node) -> str:
    """The source token at a node's position (used in error messages)."""
    toks = [t for t in tokenize(rule) if t.pos == node.pos]
    return toks[0].text if toks else ""


def compile_rule(
    rule: str | Node,
    params: Mapping[str, Any] | None = None,
    columns: Mapping[str, Any] | Collection[str] | None = None,
    *,
    indicators: Mapping[str, IndicatorInfo] | None = None,
    column_ok: Callable[[str], bool] | None = None,
    source: str | None = None,
    shared: dict[str, pl.Expr] | None = None,
) -> pl.Expr:
    """Compile a rule into a boolean polars expression (nulls where inputs are missing, e.g. gap rows).

    `columns` is the frame's schema (name -> dtype, enables type checks) or just its column names; names outside
    it (and outside `column_ok`, a predicate for column families like `rsi_14`) are unknown-name errors.
    With a `shared` dict, indicator outputs are not inlined: each becomes `pl.col("__<indicator>_<params>_<output>")`
    and its expression is registered in `shared`, so the caller computes every distinct indicator once per frame
    (polars does not deduplicate the catalogue's numba UDFs) and must add those columns first.
    """
    if isinstance(rule, str):
        source, tree = rule, parse_rule(rule)
    else:
        if source is None:
            raise ValueError("compile_rule needs `source` (the rule text) when given a parsed tree")
        tree = rule
    cols: Mapping[str, Any] | None
    if columns is None:
        cols = None
    elif isinstance(columns, Mapping):
        cols = columns
    else:
        cols = dict.fromkeys(columns)
    compiler = _Compiler(source, params or {}, cols, indicators, column_ok, shared)
    expr, kind = compiler.compile(tree)
    if kind not in (BOOL, ANY):
        raise RuleError(source, tree.pos, _token_text(source, tree), f"a rule must be a condition, got a {kind}")
    return expr


def referenced_names(rule: str) -> set[str]:
    """Every bare name a rule mentions (parameters, columns, indicators without parentheses)."""
    return {n.name for n in _walk(parse_rule(rule)) if isinstance(n, Name)}


# --- reasons: a rule's conditions, each with its value and threshold ----------------------------------------------


@dataclass(frozen=True)
class Condition:
    """One top-level `and` term of a rule: its text and, for a comparison, the operator and both sides."""

    text: str
    node: Node
    op: str | None = None  # the comparison operator (">", "crosses above", ...); None for other conditions
    left: Node | None = None
    right: Node | None = None


def conditions(rule: str) -> list[Condition]:
    """The top-level `and` terms of a rule, left to right, each with its source text (what a reason shows)."""
    tree = parse_rule(rule)
    terms: list[tuple[Node, int]] = []  # (term, position of the `and` after it, or the end)
    node: Node = tree
    end = len(rule)
    while isinstance(node, Binary) and node.op == "and":
        terms.append((node.right, end))
        end = node.pos
        node = node.left
    terms.append((node, end))
    terms.reverse()
    out, start = [], 0
    for term, stop in terms:
        text = rule[start:stop].strip()
        start = stop + 3  # past the `and`
        if isinstance(term, Binary) and (term.op in COMPARATORS or term.op.startswith("crosses")):
            out.append(Condition(text, term, term.op, term.left, term.right))
        else:
            out.append(Condition(text, term))
    return out


def compile_term(
    node: Node,
    source: str,
    params: Mapping[str, Any] | None = None,
    columns: Mapping[str, Any] | Collection[str] | None = None,
    *,
    indicators: Mapping[str, IndicatorInfo] | None = None,
) -> pl.Expr:
    """A sub-expression of a rule (a condition or one side of a comparison) as a polars expression of any kind."""
    cols = dict.fromkeys(columns) if columns is not None and not isinstance(columns, Mapping) else columns
    return _Compiler(source, params or {}, cols, indicators, None).compile(node)[0]
