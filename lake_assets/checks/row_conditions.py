"""Row conditions of expectation suites: a small grammar of their own, compiled to polars expressions.

A `row_condition` in `spec/expectations/<layer>.yaml` selects the rows an expectation judges. Spec files are data,
so a condition is never handed to a general-purpose evaluator (pandas `query`/`eval`, Python `eval`): it is
tokenized and parsed here, and only what this grammar can say reaches polars.

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" or ")" | predicate
    predicate  := operand (comparator operand | "is" ["not"] "null")?
    operand    := column | literal | "-" number
    comparator := == | != | < | <= | > | >=
    literal    := number | 'string' | "string" | True | False

Columns are the asset's canonical columns (any lower_snake_case name when the asset has no declared schema); numbers
are finite; keywords (and, or, not, is, null, true, false, none) are case-insensitive. A bare column is a boolean
predicate (`not is_gap`). Anything else (`@` names, attribute access, calls, indexing, dunder or reserved names,
chained comparisons, `= / & | ~`) is refused with the position of the offending token. Limits bound the work:
MAX_LENGTH characters, MAX_TOKENS tokens, MAX_DEPTH nested parentheses / `not`s.

Missing values follow SQL: a comparison with a null (or NaN) operand is unknown and the row is not selected;
`is null` selects null (and NaN) values.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import polars as pl

MAX_LENGTH = 1_000
MAX_TOKENS = 200
MAX_DEPTH = 32

COMPARATORS = ("==", "!=", "<", "<=", ">", ">=")
KEYWORDS = frozenset({"and", "or", "not", "is", "null", "none", "true", "false"})
_NON_FINITE = frozenset({"nan", "inf", "infinity"})
_COLUMN = re.compile(r"[a-z_][a-z0-9_]*")
_INT64 = (-(2**63), 2**63 - 1)

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|-)
    """,
    re.VERBOSE | re.DOTALL,
)
# What a refused character usually means, for the message.
_HINTS = {
    "@": "'@' names (pandas local variables) are not allowed",
    ".": "attribute access is not allowed",
    "`": "backtick-quoted names are not allowed",
    ";": "';' is not allowed: a row condition is one expression",
    ":": "':' is not allowed (no lambdas or slices)",
    ",": "',' is not allowed (no calls, tuples or lists)",
    "[": "indexing and lists are not allowed",
    "]": "indexing and lists are not allowed",
    "{": "'{' is not allowed",
    "}": "'}' is not allowed",
    "=": "use '==' to compare",
    "&": "use 'and'",
    "|": "use 'or'",
    "~": "use 'not'",
    "!": "use 'not' (or '!=' to compare)",
}


class ConditionError(ValueError):
    """A refused row condition; carries the offending token and its position, and shows a caret under it."""

    def __init__(self, condition: str, position: int, token: str, problem: str) -> None:
        self.condition, self.position, self.token, self.problem = condition, position, token, problem
        shown = repr(token[:40] + ("..." if len(token) > 40 else "")) if token else "end of condition"
        text, at = _window(condition, position)
        super().__init__(f"{problem} at position {position} (token {shown})\n  {text}\n  {' ' * at}^")


def _window(text: str, position: int, width: int = 100) -> tuple[str, int]:
    """At most `width` characters of `text` around `position` (one line), and the caret's offset in them."""
    lo = max(0, min(position - width // 2, len(text) - width))
    shown = text[lo : lo + width].replace("\n", " ").replace("\t", " ").replace("\r", " ")
    prefix = "..." if lo else ""
    return prefix + shown + ("..." if lo + width < len(text) else ""), len(prefix) + position - lo


# --- tokens --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # NUM, IDENT, STR, OP, END
    text: str
    pos: int


def tokenize(condition: str) -> list[Token]:
    """Split a condition into tokens; a character outside the grammar is reported with its position."""
    if len(condition) > MAX_LENGTH:
        raise ConditionError(
            condition, MAX_LENGTH, condition[MAX_LENGTH:], f"longer than the limit of {MAX_LENGTH:,} characters"
        )
    tokens: list[Token] = []
    pos = 0
    while pos < len(condition):
        m = _TOKEN_RE.match(condition, pos)
        if m is None:
            ch = condition[pos]
            if ch in "\"'":
                raise ConditionError(condition, pos, condition[pos:], "unterminated string")
            raise ConditionError(condition, pos, ch, _HINTS.get(ch, f"unexpected character {ch!r}"))
        kind, text = m.lastgroup or "", m.group()
        end = m.end()
        if kind == "num" and end < len(condition) and (condition[end].isalnum() or condition[end] in "_."):
            bad = re.match(r"[\w.]+", condition[pos:])
            raise ConditionError(condition, pos, bad.group() if bad else text, "malformed number")
        if kind != "ws":
            tokens.append(Token({"num": "NUM", "ident": "IDENT", "str": "STR", "op": "OP"}[kind], text, pos))
            if len(tokens) > MAX_TOKENS:
                raise ConditionError(condition, pos, text, f"more than the limit of {MAX_TOKENS} tokens")
        pos = end
    tokens.append(Token("END", "", len(condition)))
    return tokens


# --- syntax tree -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    pos: int


@dataclass(frozen=True)
class Literal:
    value: bool | int | float | str | None  # None only transiently: comparisons with null are refused
    pos: int
    text: str


@dataclass(frozen=True)
class Compare:
    op: str
    left: Column | Literal
    right: Column | Literal
    pos: int


@dataclass(frozen=True)
class IsNull:
    operand: Column
    negated: bool
    pos: int


@dataclass(frozen=True)
class Truth:  # a bare boolean column
    column: Column


@dataclass(frozen=True)
class Not:
    operand: Node
    pos: int


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    operands: tuple[Node, ...]


Node = Compare | IsNull | Truth | Not | BoolOp


@dataclass(frozen=True)
class RowCondition:
    """A parsed condition: its text, syntax tree and the columns it reads."""

    text: str
    tree: Node
    columns: tuple[str, ...]

    def expr(self, schema: Mapping[str, pl.DataType] | None = None) -> pl.Expr:
        """The condition as a boolean polars expression; rows where it is unknown (null) are not selected.

        `schema` (the frame's) lets float columns treat NaN as missing, as pandas does."""
        return _compile(self.tree, dict(schema or {})).fill_null(False)


# --- parser ----------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, condition: str, schema: Mapping[str, pl.DataType] | None) -> None:
        self.condition = condition
        self.schema = schema
        self.tokens = tokenize(condition)
        self.i = 0
        self.depth = 0
        self.columns: dict[str, None] = {}

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, problem: str, tok: Token | None = None) -> ConditionError:
        tok = tok or self.tok
        return ConditionError(self.condition, tok.pos, tok.text, problem)

    def advance(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "IDENT" and self.tok.text.lower() in words

    def is_op(self, *ops: str) -> bool:
        return self.tok.kind == "OP" and self.tok.text in ops

    def parse(self) -> Node:
        if self.tok.kind == "END":
            raise self.error("empty row condition")
        node = self.parse_or()
        if self.tok.kind != "END":
            if self.tok.kind == "IDENT" and keyword.iskeyword(self.tok.text):
                raise self.error(f"{self.tok.text!r} is a reserved word; the grammar has no such operator")
            if self.is_op(*COMPARATORS):
                raise self.error("chained comparisons are not supported; join comparisons with 'and'")
            if self.is_op("("):
                raise self.error("function calls are not allowed")
            if self.is_op(")"):
                raise self.error("unbalanced ')'")
            raise self.error("expected 'and', 'or' or the end of the condition")
        return node

    def nest(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"nested deeper than the limit of {MAX_DEPTH} parentheses / 'not's", tok)

    def parse_or(self) -> Node:
        operands = [self.parse_and()]
        while self.is_kw("or"):
            self.advance()
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def parse_and(self) -> Node:
        operands = [self.parse_not()]
        while self.is_kw("and"):
            self.advance()
            operands.append(self.parse_not())
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def parse_not(self) -> Node:
        if self.is_kw("not"):
            tok = self.advance()
            self.nest(tok)
            node: Node = Not(self.parse_not(), tok.pos)
            self.depth -= 1
            return node
        if self.is_op("("):
            tok = self.advance()
            self.nest(tok)
            if self.is_op(")"):
                raise self.error("empty parentheses")
            node = self.parse_or()
            if not self.is_op(")"):
                raise self.error("expected ')' to close the '(' at position " + str(tok.pos))
            self.advance()
            self.depth -= 1
            return node
        return self.parse_predicate()

    def parse_predicate(self) -> Node:
        left = self.parse_operand()
        if self.is_kw("is"):
            is_tok = self.advance()
            negated = self.is_kw("not")
            if negated:
                self.advance()
            if not self.is_kw("null", "none"):
                raise self.error("expected 'null' after 'is'" + (" not" if negated else ""))
            self.advance()
            if not isinstance(left, Column):
                raise self.error("'is null' applies to a column", is_tok)
            return IsNull(left, negated, is_tok.pos)
        if self.is_op(*COMPARATORS):
            op_tok = self.advance()
            right = self.parse_operand()
            for side in (left, right):
                if isinstance(side, Literal) and side.value is None:
                    hint = "is not null" if op_tok.text == "!=" else "is null"
                    raise ConditionError(self.condition, side.pos, side.text, f"compare with null using '{hint}'")
            if isinstance(left, Literal) and isinstance(right, Literal):
                raise self.error("a comparison must name a column (both sides are literals)", op_tok)
            node = Compare(op_tok.text, left, right, op_tok.pos)
            self.check_types(node)
            return node
        if isinstance(left, Literal):
            problem = "a literal alone is not a condition; compare a column with it"
            raise ConditionError(self.condition, left.pos, left.text, problem)
        if self.is_op("("):
            raise self.error("function calls are not allowed")
        dtype = self.dtype(left)
        if dtype is not None and dtype != pl.Boolean:
            problem = f"column {left.name!r} is {dtype}, not a boolean; compare it with a value"
            raise ConditionError(self.condition, left.pos, left.name, problem)
        return Truth(left)

    def parse_operand(self) -> Column | Literal:
        tok = self.tok
        if tok.kind == "NUM" or self.is_op("-"):
            return self.parse_number()
        if tok.kind == "STR":
            self.advance()
            return Literal(_unescape(self.condition, tok), tok.pos, tok.text)
        if tok.kind == "IDENT":
            word = tok.text.lower()
            if word in ("true", "false"):
                self.advance()
                return Literal(word == "true", tok.pos, tok.text)
            if word in ("null", "none"):
                self.advance()
                return Literal(None, tok.pos, tok.text)  # refused by the caller
            if word in KEYWORDS:
                raise self.error(f"expected a column or a value, got the keyword {tok.text!r}")
            return self.parse_column()
        if tok.kind == "END":
            raise self.error("expected a column or a value")
        raise self.error(f"expected a column or a value, got {tok.text!r}")

    def parse_number(self) -> Literal:
        start = self.tok
        sign = 1
        if self.is_op("-"):
            self.advance()
            sign = -1
            if self.tok.kind == "IDENT" and self.tok.text.lower() in _NON_FINITE:
                raise self.error("non-finite numbers are not allowed")
            if self.tok.kind != "NUM":
                raise self.error("'-' must be followed by a number (no arithmetic)")
        tok = self.advance()
        text = ("-" if sign < 0 else "") + tok.text
        value: int | float
        if re.fullmatch(r"\d+", tok.text):
            value = sign * int(tok.text)
            if not _INT64[0] <= value <= _INT64[1]:
                raise ConditionError(self.condition, start.pos, text, "integer out of the 64-bit range")
        else:
            value = sign * float(tok.text)
            if not math.isfinite(value):
                raise ConditionError(self.condition, start.pos, text, "non-finite numbers are not allowed")
        if self.is_op("-"):
            raise self.error("arithmetic is not allowed")
        return Literal(value, start.pos, text)

    def parse_column(self) -> Column:
        tok = self.advance()
        name = tok.text
        if name.startswith("__"):
            raise self.error("dunder names are not allowed", tok)
        if name.lower() in _NON_FINITE:
            raise self.error("non-finite numbers are not allowed", tok)
        if keyword.iskeyword(name):
            raise self.error(f"{name!r} is a reserved word, not a column", tok)
        if self.is_op("("):
            raise self.error("function calls are not allowed", tok)
        if self.schema is not None:
            if name not in self.schema:
                raise self.error(f"unknown column {name!r}; the asset's columns are {list(self.schema)}", tok)
        elif not _COLUMN.fullmatch(name):
            raise self.error(f"{name!r} is not a column name (lower_snake_case)", tok)
        self.columns[name] = None
        return Column(name, tok.pos)

    def dtype(self, operand: Column | Literal) -> pl.DataType | None:
        if isinstance(operand, Column) and self.schema is not None:
            return self.schema[operand.name]
        return None

    def check_types(self, node: Compare) -> None:
        """With a declared schema, both sides must be of one kind (number, boolean, string)."""
        kinds = [_kind_of(side, self.dtype(side)) for side in (node.left, node.right)]
        if None in kinds or kinds[0] == kinds[1]:
            return
        left, right = (_describe(side, self.dtype(side)) for side in (node.left, node.right))
        bad = node.right if isinstance(node.right, Literal) else node.left
        problem = f"cannot compare {left} with {right}"
        raise ConditionError(self.condition, bad.pos, bad.text if isinstance(bad, Literal) else bad.name, problem)


def _describe(operand: Column | Literal, dtype: pl.DataType | None) -> str:
    if isinstance(operand, Column):
        return f"column {operand.name!r} ({dtype})"
    return f"a {_kind_of(operand, None)}"



def _kind_of(operand: Column | Literal, dtype: pl.DataType | None) -> str | None:
    if isinstance(operand, Literal):
        value = operand.value
        return "boolean" if isinstance(value, bool) else "string" if isinstance(value, str) else "number"
    if dtype is None:
        return None
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_numeric():
        return "number"
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return "string"
    return str(dtype)  # temporal and nested columns compare only with their own kind


def _unescape(condition: str, tok: Token) -> str:
    body = tok.text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]  # the tokenizer guarantees a character after a backslash
            if nxt not in "\\'\"":
                raise ConditionError(condition, tok.pos + 1 + i, "\\" + nxt, "unsupported escape (only \\\\ \\' \\\")")
            out.append(nxt)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@lru_cache(maxsize=256)
def _parse_cached(condition: str, schema_items: tuple[tuple[str, pl.DataType], ...] | None) -> RowCondition:
    schema = None if schema_items is None else dict(schema_items)
    parser = _Parser(condition, schema)
    tree = parser.parse()
    return RowCondition(condition, tree, tuple(parser.columns))


def parse_condition(condition: object, schema: Mapping[str, pl.DataType] | None = None) -> RowCondition:
    """Parse a row condition; columns must be in `schema` (any lower_snake_case name when None).

    Raises ConditionError (position, token, problem) for anything outside the grammar or its limits."""
    if not isinstance(condition, str):
        raise ConditionError(repr(condition), 0, repr(condition), "a row condition must be a string")
    items = None if schema is None else tuple(schema.items())
    return _parse_cached(condition, items)


# --- compile ---------------------------------------------------------------------------------------


def _operand(side: Column | Literal, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    if isinstance(side, Literal):
        return pl.lit(side.value)
    col = pl.col(side.name)
    dtype = schema.get(side.name)
    return col.fill_nan(None) if dtype is not None and dtype.is_float() else col


def _compile(node: Node, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    if isinstance(node, BoolOp):
        parts = [_compile(n, schema) for n in node.operands]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if node.op == "and" else (out | p)
        return out
    if isinstance(node, Not):
        return ~_compile(node.operand, schema)
    if isinstance(node, Truth):
        return pl.col(node.column.name)
    if isinstance(node, IsNull):
        operand = _operand(node.operand, schema)
        return operand.is_not_null() if node.negated else operand.is_null()
    left, right = _operand(node.left, schema), _operand(node.right, schema)
    if node.op == "==":
        return left == right
    if node.op == "!=":
        return left != right
    if node.op == "<":
        return left < right
    if node.op == "<=":
        return left <= right
    if node.op == ">":
        return left > right
    return left >= right
