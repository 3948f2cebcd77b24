"""The rule language: parsing, precedence, crosses, lookbacks, parameters, and an error (with position) for
every way a rule can be wrong; compiled signals against hand-computed ones."""

from __future__ import annotations

import contextlib
import math
import time
import tracemalloc

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lake_assets.backtests.strategy_rules import (
    Binary,
    Call,
    Lookback,
    Name,
    Num,
    RuleError,
    Unary,
    compile_rule,
    parse_rule,
    referenced_names,
    tokenize,
)
from lake_assets.features.indicators import rsi

CLOSE = [10.0, 11.0, 12.0, 11.0, 10.0, 9.0, 10.0, 12.0, 13.0, 12.0, 11.0, 14.0]
OPEN = [10.0, 10.0, 11.0, 12.0, 11.0, 10.0, 9.0, 10.0, 12.0, 13.0, 12.0, 11.0]


@pytest.fixture
def frame() -> pl.DataFrame:
    n = len(CLOSE)
    return pl.DataFrame(
        {
            "open": OPEN,
            "high": [max(o, c) + 0.5 for o, c in zip(OPEN, CLOSE, strict=True)],
            "low": [min(o, c) - 0.5 for o, c in zip(OPEN, CLOSE, strict=True)],
            "close": CLOSE,
            "volume": [100.0] * n,
            "vol_regime": ["low", "high"] * (n // 2),
            "funding_extreme": [False, True] * (n // 2),
        }
    )


def run(frame: pl.DataFrame, rule: str, params: dict | None = None) -> list:
    return frame.select(compile_rule(rule, params or {}, frame.schema).alias("s"))["s"].to_list()


def roll(x: list, n: int, fn=lambda w: sum(w) / len(w)) -> list:
    """A window over the last n bars that skips missing values and needs ceil(n/2) of them (catalogue rule)."""
    out = []
    for i in range(len(x)):
        w = [v for v in x[max(0, i - n + 1) : i + 1] if v is not None]
        out.append(fn(w) if len(w) >= math.ceil(n / 2) else None)
    return out


def sma(x: list[float], n: int) -> list[float | None]:
    return roll(x, n)


# --- parsing --------------------------------------------------------------------------------


def test_tokenizer_positions() -> None:
    toks = tokenize("RSI(14) >= 30.5 and close[1]")
    assert [(t.kind, t.text, t.pos) for t in toks] == [
        ("IDENT", "RSI", 0),
        ("OP", "(", 3),
        ("NUM", "14", 4),
        ("OP", ")", 6),
        ("OP", ">=", 8),
        ("NUM", "30.5", 11),
        ("IDENT", "and", 16),
        ("IDENT", "close", 20),
        ("OP", "[", 25),
        ("NUM", "1", 26),
        ("OP", "]", 27),
        ("END", "", 28),
    ]


def test_precedence_and_binds_tighter_than_or_and_not_tighter_than_and() -> None:
    tree = parse_rule("a > 1 or not b > 2 and c < 3")
    assert isinstance(tree, Binary) and tree.op == "or"
    assert isinstance(tree.right, Binary) and tree.right.op == "and"
    assert isinstance(tree.right.left, Unary) and tree.right.left.op == "not"
    arith = parse_rule("close > open + 2 * 3 - 1")
    assert isinstance(arith, Binary) and arith.op == ">"
    rhs = arith.right
    assert isinstance(rhs, Binary) and rhs.op == "-"
    assert isinstance(rhs.left, Binary) and rhs.left.op == "+"
    assert isinstance(rhs.left.right, Binary) and rhs.left.right.op == "*"
    grouped = parse_rule("(a > 1 or b > 2) and c > 3")
    assert isinstance(grouped, Binary) and grouped.op == "and"


def test_calls_outputs_lookbacks_and_crosses_parse() -> None:
    tree = parse_rule("MACD(12, 26, 9) histogram crosses above 0")
    assert isinstance(tree, Binary) and tree.op == "crosses above"
    call = tree.left
    assert isinstance(call, Call) and call.name == "MACD" and len(call.args) == 3
    assert call.output is not None and call.output.name == "histogram"
    dotted = parse_rule("close < BBANDS(20, 2).lower")
    assert isinstance(dotted, Binary) and isinstance(dotted.right, Call) and dotted.right.output.name == "lower"
    look = parse_rule("close > highest(close, 20)[1]")
    assert isinstance(look, Binary) and isinstance(look.right, Lookback)
    assert isinstance(look.right.operand, Call) and look.right.bars == Num(1.0, 26 + 1, "1")
    param_look = parse_rule("close[n] < open[n]")
    assert isinstance(param_look, Binary) and isinstance(param_look.left, Lookback)
    assert param_look.left.bars == Name("n", 6)
    assert referenced_names("RSI(rsi_period) crosses above oversold") == {"rsi_period", "oversold"}


# --- compiled signals vs hand computation ---------------------------------------------------


def test_comparison_against_sma_by_hand(frame: pl.DataFrame) -> None:
    s3 = sma(CLOSE, 3)
    expected = [None if m is None else c > m for c, m in zip(CLOSE, s3, strict=True)]
    assert run(frame, "close > SMA(3)") == expected
    assert run(frame, "close > SMA(close, 3)") == expected


def test_crosses_by_hand(frame: pl.DataFrame) -> None:
    s3 = sma(CLOSE, 3)
    up, down = [], []
    for i in range(len(CLOSE)):
        if i == 0 or s3[i] is None or s3[i - 1] is None:
            up.append(None if s3[i] is None or i == 0 or s3[i - 1] is None else None)
            down.append(None)
            continue
        up.append(CLOSE[i] > s3[i] and CLOSE[i - 1] <= s3[i - 1])
        down.append(CLOSE[i] < s3[i] and CLOSE[i - 1] >= s3[i - 1])
    got_up = run(frame, "close crosses above SMA(3)")
    got_down = run(frame, "close crosses below SMA(3)")
    # where both sides exist the result matches; before that it is null or False, never True
    for i in range(len(CLOSE)):
        if up[i] is not None:
            assert got_up[i] == up[i], i
            assert got_down[i] == down[i], i
        else:
            assert got_up[i] in (None, False) and got_down[i] in (None, False)
    assert any(got_up) and any(got_down)
    # crossing a constant: compare with the previous bar, never shift the constant into null
    got_const = run(frame, "close crosses above 11.5")
    assert got_const[1:] == [CLOSE[i] > 11.5 and CLOSE[i - 1] <= 11.5 for i in range(1, len(CLOSE))]
    assert got_const[0] is not True


def test_lookbacks_by_hand(frame: pl.DataFrame) -> None:
    assert run(frame, "close[1] < open[1]") == [None] + [CLOSE[i - 1] < OPEN[i - 1] for i in range(1, len(CLOSE))]
    hh = [None, *roll(CLOSE, 3, max)[:-1]]  # highest of the 3 bars before this one
    expected = [None if h is None else c > h for c, h in zip(CLOSE, hh, strict=True)]
    assert run(frame, "close > highest(close, 3)[1]") == expected
    assert run(frame, "close > highest(close, 3)[k]", {"k": 1}) == expected
    ll = roll(CLOSE, 3, min)
    exp_low = [None if m is None else c == m for c, m in zip(CLOSE, ll, strict=True)]
    assert run(frame, "close == lowest(close, 3)") == exp_low


def test_parameters_and_rsi_match_the_catalogue(frame: pl.DataFrame) -> None:
    ref = frame.select(rsi("close", 3).alias("r"))["r"].to_list()
    ref = [None if v is None or math.isnan(v) else v for v in ref]
    expected = [None] + [
        None if (a is None or b is None) else (b > 40 and a <= 40) for a, b in zip(ref[:-1], ref[1:], strict=True)
    ]
    got = run(frame, "RSI(p) crosses above lvl", {"p": 3, "lvl": 40})
    assert got == expected
    assert any(got)


def test_boolean_logic_strings_and_arithmetic(frame: pl.DataFrame) -> None:
    exp = [
        (c > o and r == "high") or (f and c - o > 1.5)
        for c, o, r, f in zip(CLOSE, OPEN, ["low", "high"] * 6, [False, True] * 6, strict=True)
    ]
    assert run(frame, "close > open and vol_regime == 'high' or funding_extreme and close - open > 1.5") == exp
    assert run(frame, "not (close > open)") == [not c > o for c, o in zip(CLOSE, OPEN, strict=True)]
    assert run(frame, "abs(close - open) >= 2 * 1") == [abs(c - o) >= 2 for c, o in zip(CLOSE, OPEN, strict=True)]
    assert run(frame, "close > -x", {"x": -11}) == [c > 11 for c in CLOSE]
    assert run(frame, "funding_extreme") == [False, True] * 6


def test_multi_output_indicators(frame: pl.DataFrame) -> None:
    from lake_assets.features.indicators import bollinger, macd

    bb = frame.select(**bollinger("close", 4, 1.0))
    lower = [None if v is None or math.isnan(v) else v for v in bb["lower"].to_list()]
    exp = [None if lw is None else c < lw for c, lw in zip(CLOSE, lower, strict=True)]
    assert run(frame, "close < BBANDS(4, 1).lower") == exp
    assert run(frame, "close < BBANDS(4, 1) lower") == exp
    m = frame.select(**macd("close", 2, 4, 2))
    hist = [None if v is None or math.isnan(v) else v for v in m["hist"].to_list()]
    assert run(frame, "MACD(2, 4, 2) histogram > 0") == [None if h is None else h > 0 for h in hist]


def test_gap_rows_are_missing_not_zero() -> None:
    close = [1.0, 2.0, None, 4.0, 5.0]
    df = pl.DataFrame({"close": close, "open": [1.0, 1.0, None, 1.0, 1.0]})
    got = df.select(compile_rule("close > close[1]", {}, df.schema).fill_null(False).alias("s"))["s"]
    assert got.to_list() == [False, True, False, False, True]


# --- errors name the token and its position --------------------------------------------------

ERRORS = [
    ("RSX(14) > 30", 0, "RSX", "unknown indicator or function"),
    ("close > > 3", 8, ">", "unexpected token"),
    ("close > 3 $", 10, "$", "unexpected character"),
    ("vol_regime == 'high", 14, "'high", "unterminated string"),
    ("SMA(20 > close", 14, "", "expected ')'"),
    ("1 < close < 3", 10, "<", "chained comparison"),
    ("RSI(14) crosses 30", 16, "30", "expected 'above' or 'below'"),
    ("clsoe > 3", 0, "clsoe", "unknown name"),
    ("MACD histo < 0", 5, "histo", "MACD has no output 'histo'"),
    ("close[-1] > 3", 6, "-", "negative lookback"),
    ("close[1.5] > 3", 6, "1.5", "whole number"),
    ("", 0, "", "empty rule"),
    ("close and open > 1", 0, "close", "expected a condition, got a number"),
    ("RSI(14)", 0, "RSI", "a rule must be a condition"),
    ("RSI(14, 3) > 50", 8, "3", "too many arguments"),
    ("and close > 3", 0, "and", "unexpected keyword"),
    ("close > 3 open", 10, "open", "unexpected name"),
    ("MACD(26, 12, 9) hist > 0", 0, "MACD", "fast must be smaller"),
    ("close > SMA(period)", 12, "period", "must be a number or a parameter name"),
    ("highest(close) > 3", 0, "highest", "takes 2 arguments"),
    ("close > highest(close, 0)", 23, "0", "window must be a whole number >= 1"),
    ("close[lag] > 3", 6, "lag", "unknown parameter"),
    ("vol_regime > 3", 0, "vol_regime", "expected a number, got a text"),
    ("close histogram > 3", 6, "histogram", "not an indicator"),
    ("BBANDS(20, 2) > close", 0, "BBANDS", "several outputs"),
    ("close > SMA", 8, "SMA", "missing parameter"),
]


@pytest.mark.parametrize(("rule", "pos", "token", "problem"), ERRORS)
def test_every_error_points_at_the_token(frame: pl.DataFrame, rule: str, pos: int, token: str, problem: str) -> None:
    with pytest.raises(RuleError) as info:
        compile_rule(rule, {"p": 14}, frame.schema)
    err = info.value
    assert problem in err.problem, err
    assert (err.position, err.token) == (pos, token), str(err)
    assert f"at position {pos}" in str(err)
    assert rule in str(err)


def test_negative_lookback_parameter_is_refused(frame: pl.DataFrame) -> None:
    with pytest.raises(RuleError, match="future"):
        compile_rule("close[lag] > 3", {"lag": -2}, frame.schema)


def test_unknown_columns_without_schema_use_the_predicate() -> None:
    expr = compile_rule("rsi_14 > 70", {}, columns=(), column_ok=lambda c: c == "rsi_14")
    df = pl.DataFrame({"rsi_14": [60.0, 80.0]})
    assert df.select(expr.alias("s"))["s"].to_list() == [False, True]
    with pytest.raises(RuleError, match="unknown name"):
        compile_rule("rsi_15 > 70", {}, columns=(), column_ok=lambda c: c == "rsi_14")


def test_nan_from_indicators_is_never_true() -> None:
    """Polars orders NaN above every number; warm-up NaNs must not read as 'RSI > 70'."""
    df = pl.DataFrame({"close": list(np.linspace(1, 2, 10))})
    got = df.select(compile_rule("RSI(14) > 70", {}, df.schema).alias("s"))["s"].to_list()
    assert not any(v is True for v in got)


# --- limits: a rule is untrusted input ------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        "(" * 10_000 + "close > 1" + ")" * 10_000,  # 10,000 nested parentheses
        "not " * 5_000 + "funding_extreme",
        "close > " + "-" * 5_000 + "1",
        "close > " + "- " * 5_000 + "1",
        "close > " + "+" * 5_000 + "1",
        "close" + "[1]" * 5_000 + " > 1",
        "close > " + "abs(" * 1_000 + "close" + ")" * 1_000,
    ],
    ids=["parens", "nots", "unary_minus", "spaced_minus", "unary_plus", "lookbacks", "calls"],
)
def test_deep_nesting_is_refused_at_the_depth_limit(rule: str) -> None:
    with pytest.raises(RuleError, match="nested too deeply.*MAX_DEPTH") as info:
        parse_rule(rule)
    assert info.value.position < 200  # stops at the first level over the limit
    assert "^" in str(info.value)  # the caret still points at it


def test_nesting_up_to_the_limit_parses_and_compiles(frame: pl.DataFrame) -> None:
    from lake_assets.backtests.strategy_rules import MAX_DEPTH

    n = MAX_DEPTH - 1
    assert run(frame, "(" * n + "close > 11" + ")" * n) == [c > 11 for c in CLOSE]
    assert run(frame, "not " * (MAX_DEPTH - 2) + "close > 11") == [c > 11 for c in CLOSE]  # an even number


def test_a_huge_rule_fails_fast_at_the_length_limit() -> None:
    rule = "close > 1 and " * 750_000 + "close > 1"  # ~10 MB
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(RuleError, match="too long.*MAX_RULE_LENGTH") as info:
        parse_rule(rule)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 1_000_000  # no copy of the rule, no token list
    assert len(str(info.value)) < 1_000  # the message shows an excerpt, not 10 MB
    with pytest.raises(RuleError, match="too long"):
        tokenize(rule)


def test_token_limit_stops_tokenizing() -> None:
    from lake_assets.backtests.strategy_rules import MAX_TOKENS

    rule = " and ".join(["close > 1"] * MAX_TOKENS)
    with pytest.raises(RuleError, match=f"more than {MAX_TOKENS} tokens.*MAX_TOKENS"):
        parse_rule(rule)


def test_long_chains_compile_without_recursion(frame: pl.DataFrame) -> None:
    from lake_assets.backtests.strategy_rules import MAX_TOKENS

    n = (MAX_TOKENS - 1) // 4
    assert run(frame, " and ".join(["close > 11"] * n)) == [c > 11 for c in CLOSE]
    assert run(frame, " or ".join(["close > 11"] * n)) == [c > 11 for c in CLOSE]
    m = (MAX_TOKENS - 3) // 2
    assert run(frame, "close < " + " + ".join(["1"] * m)) == [c < m for c in CLOSE]
    assert run(frame, "close > " + " - ".join(["1"] * m)) == [c > 2 - m for c in CLOSE]
    assert referenced_names(" and ".join(["close > open"] * n)) == {"close", "open"}


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("close > 1" + "0" * 400, "number out of range"),
        ("close[99999999999] > 1", "MAX_BARS"),
        ("close > highest(close, 1" + "0" * 400 + ")", "number out of range"),
        ("close > highest(close, 10000000000)", "at most"),
        ("close > SMA(1" + "0" * 400 + ")", "number out of range"),
    ],
)
def test_out_of_range_numbers_are_rule_errors(rule: str, problem: str) -> None:
    with pytest.raises(RuleError, match=problem):
        compile_rule(rule, {}, ["close"])


def test_non_finite_parameters_are_rule_errors() -> None:
    for value in (math.inf, -math.inf, math.nan, 1e30):
        with pytest.raises(RuleError):
            compile_rule("close[n] > 1", {"n": value}, ["close"])
        with pytest.raises(RuleError):
            compile_rule("close > highest(close, n)", {"n": value}, ["close"])


# --- fuzz: whatever the text, the parser answers with a RuleError or a tree -----------------

_SOUP = st.sampled_from(
    ["(", ")", "[", "]", ",", ".", "-", "+", "*", "/", ">", ">=", "<", "<=", "==", "!=", "and", "or", "not",
     "crosses", "above", "below", "true", "false", "close", "open", "volume", "n", "RSI", "SMA", "MACD", "BBANDS",
     "histogram", "upper", "highest", "abs", "change", "zscore", "0", "1", "14", "2.5", "1e400", "99999999999",
     "'x'", '"y', "@", " "]
)  # fmt: skip
_FUZZ = settings(max_examples=300, deadline=2_000, suppress_health_check=[HealthCheck.too_slow])


def _no_crash(rule: str) -> None:
    with contextlib.suppress(RuleError):
        compile_rule(rule, {"n": 3}, ["close", "open", "volume"])


@_FUZZ
@given(st.lists(_SOUP, max_size=60).map(" ".join))
def test_fuzz_token_soup(rule: str) -> None:
    _no_crash(rule)


@_FUZZ
@given(st.lists(_SOUP, min_size=1, max_size=8), st.integers(1, 3_000))
def test_fuzz_repeated_soup(chunk: list[str], times: int) -> None:
    _no_crash(" ".join(chunk) * times)


@_FUZZ
@given(st.text(max_size=200))
def test_fuzz_any_text(rule: str) -> None:
    _no_crash(rule)


def _valid_rules() -> st.SearchStrategy[str]:
    num = st.one_of(st.sampled_from(["close", "open", "volume", "n", "SMA(n)", "RSI(14)", "abs(close)",
                                     "highest(close, 5)", "close[1]", "close[n]"]),
                    st.floats(0, 1e6, allow_nan=False).map(repr), st.integers(0, 10**6).map(str))  # fmt: skip

    def arith(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(" ".join),
            children.map(lambda c: f"-({c})"),
            children.map(lambda c: f"({c})"),
        )

    expr = st.recursive(num, arith, max_leaves=12)
    cond = st.tuples(expr, st.sampled_from([">", ">=", "<", "<=", "==", "!=", "crosses above", "crosses below"]),
                     expr).map(" ".join)  # fmt: skip

    def logic(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(children, st.sampled_from(["and", "or"]), children).map(" ".join),
            children.map(lambda c: f"not ({c})"),
            children.map(lambda c: f"({c})"),
        )

    return st.recursive(cond, logic, max_leaves=12)


@_FUZZ
@given(_valid_rules())
def test_fuzz_valid_rules_compile_or_hit_a_limit(rule: str) -> None:
    try:
        expr = compile_rule(rule, {"n": 3}, {"close": pl.Float64, "open": pl.Float64, "volume": pl.Float64})
    except RuleError as exc:  # only a limit may refuse a well-formed rule
        assert "MAX_" in exc.problem, exc
        return
    assert isinstance(expr, pl.Expr)
