"""The rule language: parsing, precedence, crosses, lookbacks, parameters, and an error (with position) for
every way a rule can be wrong; compiled signals against hand-computed ones."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

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
