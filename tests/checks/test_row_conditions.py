"""Row conditions of expectation suites are data: qlake's own grammar, compiled to polars, never evaluated.

The exploit from the tracker (`@os.system(...)` in a row_condition, run by pandas `query` during materialize) and its
variants are refused with a SpecError naming file, key and token, and nothing runs; the grammar's limits hold.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import polars as pl
import pytest
from test_expectations import make_bars

from lake_assets.checks import row_conditions as rc
from lake_assets.checks.expectations import load_suites, run_expectations
from lake_assets.checks.row_conditions import ConditionError, parse_condition
from lake_assets.specs import SpecError
from lake_assets.vocabulary import BARS_SCHEMA


@pytest.fixture(scope="module", autouse=True)
def gx() -> None:
    from lake_assets.checks.expectations import gx_context

    gx_context()


def _suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layer: str, asset: str, conditions: list[str]) -> Path:
    """A suite file with one not-null expectation per condition (a YAML single-quoted string each)."""
    monkeypatch.setenv("QLAKE_SPEC_DIR", str(tmp_path))
    path = tmp_path / "expectations" / f"{layer}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{asset}:"]
    for cond in conditions:
        quoted = "'" + cond.replace("'", "''") + "'"
        lines += [
            "  - expectation: expect_column_values_to_not_be_null",
            f"    kwargs: {{column: ts, row_condition: {quoted}}}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, condition: str, asset: str = "bars") -> SpecError:
    ok = "is_gap == False" if asset == "bars" else "flag == True"
    path = _suite(tmp_path, monkeypatch, "cleaned", asset, [ok, ok, ok, condition])
    with pytest.raises(SpecError) as info:
        load_suites("cleaned")
    err = info.value
    assert err.file == str(path) and err.key == f"{asset}.3.kwargs.row_condition"
    return err


# --- the exploit and its variants ---------------------------------------------------------------


def exploits(marker: Path) -> list[tuple[str, str]]:
    """(condition, the token the error must name); every one would write `marker` if evaluated by pandas/Python."""
    cmd = f"touch {marker}"
    return [
        (f"@os.system('{cmd}') == 0", "@"),
        (f"is_gap == False and @os.system('{cmd}') == 0", "@"),
        (f"__import__('os').system('{cmd}') == 0", "."),
        ("__import__('os') == 0", "__import__"),
        (f"ts.__class__.__init__.__globals__['os'].system('{cmd}')", "."),
        (f"close.apply(lambda x: __import__('os').system('{cmd}'))", "."),
        (f"system('{cmd}') == 0", "system"),
        (f"`is_gap` == False or os.system('{cmd}')", "`"),
        (f"is_gap == False; __import__('os').system('{cmd}')", ";"),
        (f"lambda: __import__('os').system('{cmd}')", ":"),
        (f"[__import__('os').system('{cmd}')]", "["),
        (f"is_gap == {{'{cmd}'}}", "{"),
    ]


@pytest.mark.parametrize("n", range(12))
def test_exploit_and_variants_are_refused_and_nothing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    marker = tmp_path / "pwned"
    condition, token = exploits(marker)[n]
    err = _refused(tmp_path, monkeypatch, condition)
    assert f"(token {token!r})" in err.problem and "^" in err.problem
    with pytest.raises(SpecError):
        run_expectations(make_bars(20), "bars", "cleaned")
    assert not marker.exists()


def test_exploit_is_refused_for_assets_without_a_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"
    for condition, token in exploits(marker):
        err = _refused(tmp_path, monkeypatch, condition, asset="features")
        assert f"(token {token!r})" in err.problem
    assert not marker.exists()


def test_pandas_never_evaluates_a_condition(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped suites run with pandas' evaluators disabled: GX is never handed a row_condition."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a spec value reached a pandas evaluator")

    monkeypatch.setattr(pd.DataFrame, "query", refuse)
    monkeypatch.setattr(pd.DataFrame, "eval", refuse)
    monkeypatch.setattr(pd, "eval", refuse)
    df = make_bars(200, gaps=(5, 6)).with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(1.0).otherwise(pl.col("volume")).alias("volume")
    )
    result = run_expectations(df, "bars", "cleaned")
    r = result.result("expect_column_values_to_be_null", "volume")
    assert r.unexpected_count == 1 and r.element_count == 2 and not r.exception
    assert r.sample_rows[0]["ts"] == df["ts"][5]  # rows keep their position in the asset's frame
    assert all(not x.exception for x in result.results)


def test_at_signs_and_code_inside_string_literals_are_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"
    cond = f"instrument != '@os.system(\"touch {marker}\")' and instrument != \"a.__class__; `x`\""
    _suite(tmp_path, monkeypatch, "cleaned", "bars", [cond])
    result = run_expectations(make_bars(30), "bars", "cleaned")
    assert result.success and result.results[0].element_count == 30
    assert not marker.exists()


# --- grammar, errors and limits ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "token", "problem"),
    [
        ("nope == 1", "nope", "unknown column 'nope'"),
        ("f(close)", "f", "function calls are not allowed"),
        ("is_gap(1)", "is_gap", "function calls are not allowed"),
        ("__class__ == 1", "__class__", "dunder names"),
        ("close == nan", "nan", "non-finite"),
        ("close < inf", "inf", "non-finite"),
        ("close > -Infinity", "Infinity", "non-finite"),
        ("close > 1e999", "1e999", "non-finite"),
        ("close > -1e400", "-1e400", "non-finite"),
        ("trade_count > 99999999999999999999", "99999999999999999999", "64-bit"),
        ("close > 0x10", "0x10", "malformed number"),
        ("close == None", "None", "is null"),
        ("close != null", "null", "is not null"),
        ("close", "close", "not a boolean"),
        ("1 == 1", "==", "both sides are literals"),
        ("'x'", "'x'", "a literal alone"),
        ("close > 1 > 0", ">", "chained comparisons"),
        ("close = 1", "=", "use '=='"),
        ("is_gap & is_outlier", "&", "use 'and'"),
        ("is_gap | is_outlier", "|", "use 'or'"),
        ("~is_gap", "~", "use 'not'"),
        ("close > 1 + 2", "+", "unexpected character '+'"),
        ("close > -open", "open", "no arithmetic"),
        ("close > 'a'", "'a'", "cannot compare column 'close' (Float64) with a string"),
        ("is_gap == 1", "1", "cannot compare column 'is_gap' (Boolean) with a number"),
        ("instrument == close", "instrument", "cannot compare"),
        ("is_gap in (True)", "in", "reserved word"),
        ("import == 1", "import", "reserved word"),
        ("close is 1", "1", "expected 'null' after 'is'"),
        ("(is_gap", "", "expected ')'"),
        ("is_gap)", ")", "unbalanced ')'"),
        ("()", ")", "empty parentheses"),
        ("", "", "empty row condition"),
        ("instrument == 'abc", "'abc", "unterminated string"),
        ("instrument == 'a\\nb'", "\\n", "unsupported escape"),
        ("is_gap is_outlier", "is_outlier", "expected 'and', 'or'"),
        ("is_gap and", "", "expected a column or a value"),
        ("not", "", "expected a column or a value"),
    ],
)
def test_refusals_name_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, condition: str, token: str, problem: str
) -> None:
    err = _refused(tmp_path, monkeypatch, condition)
    shown = repr(token) if token else "end of condition"
    assert problem in err.problem and f"(token {shown})" in err.problem, err.problem


def test_caret_points_at_the_token() -> None:
    with pytest.raises(ConditionError) as info:
        parse_condition("is_gap == False and @evil", BARS_SCHEMA)
    err = info.value
    assert err.position == 20 and err.token == "@"
    text_line, caret_line = str(err).splitlines()[1:]
    assert caret_line.index("^") == text_line.index("@")


def test_limits_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = "(" * (rc.MAX_DEPTH + 1) + "is_gap" + ")" * (rc.MAX_DEPTH + 1)
    assert "limit of 32 parentheses" in _refused(tmp_path, monkeypatch, deep).problem
    nots = "not " * (rc.MAX_DEPTH + 1) + "is_gap"
    assert "limit of 32" in _refused(tmp_path, monkeypatch, nots).problem
    parse_condition("(" * rc.MAX_DEPTH + "is_gap" + ")" * rc.MAX_DEPTH, BARS_SCHEMA)  # at the limit: fine
    long = "is_gap == False and " * 60 + "is_gap"
    assert "limit of 1,000 characters" in _refused(tmp_path, monkeypatch, long).problem
    many = " or ".join(["a"] * 101)  # 201 tokens in 501 characters
    assert len(many) < rc.MAX_LENGTH
    assert f"limit of {rc.MAX_TOKENS} tokens" in _refused(tmp_path, monkeypatch, many, asset="features").problem
    parse_condition(" or ".join(["a"] * 100), None)  # 199 tokens: fine
    huge = "is_gap or " * 100_000 + "is_gap"  # refused before any tokenizing
    with pytest.raises(ConditionError, match="limit of 1,000 characters"):
        parse_condition(huge, BARS_SCHEMA)


def test_non_string_conditions_and_condition_parser_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QLAKE_SPEC_DIR", str(tmp_path))
    path = tmp_path / "expectations" / "cleaned.yaml"
    path.parent.mkdir(parents=True)
    for kwargs, problem in (
        ("{column: ts, row_condition: 3}", "row_condition must be a string"),
        ("{column: ts, row_condition: 'is_gap', condition_parser: pandas}", "condition_parser cannot be set"),
    ):
        path.write_text(f"bars:\n  - expectation: expect_column_values_to_not_be_null\n    kwargs: {kwargs}\n")
        with pytest.raises(SpecError, match=problem) as info:
            load_suites("cleaned")
        assert info.value.key == "bars.0.kwargs"


# --- semantics -------------------------------------------------------------------------------------


def _select(condition: str, df: pl.DataFrame, schema: pl.Schema | None = None) -> list[int]:
    mask = df.select(parse_condition(condition, schema).expr(df.schema)).to_series()
    return [i for i, keep in enumerate(mask) if keep]


def test_grammar_selects_what_it_says() -> None:
    df = pl.DataFrame(
        {
            "a": [1.0, 2.0, None, float("nan"), 5.0],
            "b": [1, 2, 3, 4, None],
            "s": ["X", "Y", None, "it's", "X"],
            "f": [True, False, None, True, False],
        }
    )
    cases = {
        "a > 1": [1, 4],
        "a >= 2 and b <= 2": [1],
        "(a > 1) or (b <= 2.5)": [0, 1, 4],
        "a is null": [2, 3],  # NaN counts as missing, as in pandas
        "a IS NOT NULL": [0, 1, 4],
        "a != 1": [1, 4],  # a comparison with a missing value selects nothing (SQL)
        "s != 'X'": [1, 3],
        's == "it\\\'s"': [3],
        "f": [0, 3],
        "not f": [1, 4],
        "f == True": [0, 3],
        "f == false": [1, 4],
        "not (f or b > 3)": [1],
        "-1 < b and b < 3": [0, 1],
        "a > b": [],
        "a == b": [0, 1],
        "b > -2.5e0": [0, 1, 2, 3],
        "not not f": [0, 3],
        "f and not f or b == 4": [3],  # and binds tighter than or
    }
    for condition, rows in cases.items():
        assert _select(condition, df) == rows, condition


def test_parsed_condition_lists_its_columns() -> None:
    cond = parse_condition("(close > 0 and not is_gap) or volume is null or close < 1", BARS_SCHEMA)
    assert cond.columns == ("close", "is_gap", "volume")


def test_runtime_problems_become_exceptions_not_crashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An asset without a declared schema: a condition naming a column the frame lacks, or a non-boolean column
    used as a predicate, fails those expectations with a message instead of evaluating anything."""
    monkeypatch.setenv("QLAKE_SPEC_DIR", str(tmp_path))
    path = tmp_path / "expectations" / "features.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(
        "features:\n"
        "  - expectation: expect_column_values_to_be_between\n"
        "    kwargs: {column: vol, min_value: 0, row_condition: 'missing == True'}\n"
        "  - expectation: expect_column_values_to_be_between\n"
        "    kwargs: {column: vol, min_value: 0, row_condition: 'vol'}\n"
        "  - expectation: expect_column_values_to_be_between\n"
        "    kwargs: {column: vol, min_value: 0, row_condition: 'warm and vol > -1'}\n"
    )
    df = pl.DataFrame({"vol": [0.1, -0.2, 0.3], "warm": [True, True, False]})
    result = run_expectations(df, "features", "features")
    first, second, third = result.results
    assert first.exception and "missing" in first.exception and not first.success
    assert second.exception and "not a boolean" in second.exception
    assert third.unexpected_count == 1 and third.element_count == 2 and not third.exception


def test_expectations_that_run_queries_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QLAKE_SPEC_DIR", str(tmp_path))
    path = tmp_path / "expectations" / "cleaned.yaml"
    path.parent.mkdir(parents=True)
    for name, kwargs in (
        ("unexpected_rows_expectation", "{unexpected_rows_query: 'SELECT * FROM {batch}'}"),
        ("expect_query_results_to_match_comparison", "{base_query: 'SELECT 1', comparison_query: 'SELECT 1'}"),
    ):
        path.write_text(f"bars:\n  - expectation: {name}\n    kwargs: {kwargs}\n")
        with pytest.raises(SpecError, match="runs a query") as info:
            load_suites("cleaned")
        assert info.value.key == "bars.0.expectation"
