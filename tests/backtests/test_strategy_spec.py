"""Strategy specs: every shipped JSON loads and compiles into sane signals; malformed specs name file, field and
problem; compiled signals are point-in-time (truncating the frame does not change earlier signals)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lake_assets.backtests.strategy_spec import (
    ENTRY_LONG,
    ENTRY_SHORT,
    EXIT_LONG,
    SIGNAL_COLUMNS,
    StrategySpec,
    compile_signals,
    load_strategies,
    load_strategy,
    parse_strategy,
)
from lake_assets.settings import PROJECT_ROOT
from lake_assets.specs import SpecError

SHIPPED = PROJECT_ROOT / "spec" / "strategies"
CLASSIC = {
    "rsi_reversal",
    "sma_crossover",
    "ema_crossover",
    "macd_momentum",
    "bollinger_mean_reversion",
    "donchian_breakout",
    "funding_fade",
}


def synthetic_bars(n: int = 3000, seed: int = 0, instrument: str = "BTCUSDT-PERP") -> pl.DataFrame:
    """A 5m perp with a persistent-volatility random walk, funding every bar (as-of), a few gap rows."""
    rng = np.random.default_rng(seed)
    vol = 0.002 * np.exp(np.cumsum(rng.normal(0, 0.02, n)) * 0.2)
    ret = rng.normal(0, 1, n) * vol + 0.0002 * np.sin(np.arange(n) / 150)
    close = 100 * np.exp(np.cumsum(ret))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.001, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.001, n)))
    fz = np.repeat(rng.normal(0.0, 1.5, n // 96 + 1), 96)[:n]  # funding z-score, often extreme
    funding = 0.0001 + 0.0003 * fz
    gap = np.zeros(n, dtype=bool)
    gap[[i for i in (250, 251, 1700) if i < n]] = True
    df = pl.DataFrame(
        {
            "ts": [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=5 * i) for i in range(n)],
            "instrument": [instrument] * n,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.uniform(10, 100, n),
            "is_gap": gap,
            "funding_rate": funding,
            "funding_z": fz,
        }
    )
    masked = [
        pl.when(pl.col("is_gap")).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close", "volume")
    ]
    return df.with_columns(masked)


def write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def good_spec(**overrides: object) -> dict:
    spec = {
        "name": "probe",
        "description": "a test strategy",
        "parameters": {"n": {"type": "int", "default": 10, "low": 5, "high": 20, "step": 5}},
        "entry_rules": {"long": "close > SMA(n)"},
        "exit_rules": {"long": "close < SMA(n)"},
    }
    spec.update(overrides)
    return spec


# --- shipped strategies ----------------------------------------------------------------------


def test_the_classic_set_is_shipped_and_loads() -> None:
    specs = load_strategies(SHIPPED)
    assert set(specs) >= CLASSIC
    for name, spec in specs.items():
        assert spec.name == name and spec.description
        assert spec.defaults() == spec.resolve_params({})


@pytest.mark.parametrize("name", sorted(CLASSIC))
def test_each_shipped_strategy_compiles_to_signals(name: str) -> None:
    spec = load_strategy(SHIPPED / f"{name}.json")
    bars = synthetic_bars()
    out = compile_signals(bars, spec)
    assert out.height == bars.height
    for col in SIGNAL_COLUMNS:
        assert out[col].dtype == pl.Boolean and out[col].null_count() == 0
    entries = int(out[ENTRY_LONG].sum() + out[ENTRY_SHORT].sum())
    assert 0 < entries < bars.height / 2, entries  # it trades, but not on every bar
    assert not out.filter(pl.col("is_gap"))[ENTRY_LONG].any()  # never enters on a gap bar


def test_signals_are_point_in_time() -> None:
    bars = synthetic_bars(1500)
    for name in ("macd_momentum", "donchian_breakout", "rsi_reversal"):
        spec = load_strategy(SHIPPED / f"{name}.json")
        full = compile_signals(bars, spec)
        cut = compile_signals(bars.head(900), spec)
        assert cut.select(SIGNAL_COLUMNS).equals(full.head(900).select(SIGNAL_COLUMNS)), name


def test_multi_instrument_frames_never_mix_instruments() -> None:
    a, b = synthetic_bars(800, seed=1, instrument="AAA"), synthetic_bars(800, seed=2, instrument="BBB")
    spec = load_strategy(SHIPPED / "donchian_breakout.json")
    both = compile_signals(pl.concat([b, a]), spec)
    alone = compile_signals(a, spec)
    assert both.filter(pl.col("instrument") == "AAA").select(SIGNAL_COLUMNS).equals(alone.select(SIGNAL_COLUMNS))


def test_parameters_change_the_signals() -> None:
    spec = load_strategy(SHIPPED / "sma_crossover.json")
    bars = synthetic_bars()
    a = compile_signals(bars, spec, {"fast": 5, "slow": 60})
    b = compile_signals(bars, spec, {"fast": 50, "slow": 200})
    assert a[ENTRY_LONG].sum() > b[ENTRY_LONG].sum()
    with pytest.raises(ValueError, match="outside"):
        compile_signals(bars, spec, {"fast": 500})
    with pytest.raises(KeyError, match="no parameter 'speed'"):
        compile_signals(bars, spec, {"speed": 5})


def test_grid() -> None:
    spec = parse_strategy(
        good_spec(
            parameters={
                "n": {"type": "int", "default": 10, "low": 5, "high": 20, "step": 5},
                "mode": {"type": "choice", "default": "a", "choices": ["a", "b"]},
                "k": {"type": "float", "default": 1.0, "low": 0.5, "high": 1.5, "step": 0.5},
            }
        )
    )
    assert spec.grid_size() == 4 * 2 * 3
    grid = spec.grid()
    assert len(grid) == 24 and {"n": 20, "mode": "b", "k": 1.5} in grid
    assert all(isinstance(g["n"], int) for g in grid)
    continuous = parse_strategy(
        good_spec(
            parameters={"x": {"type": "float", "default": 1, "low": 0, "high": 2}},
            entry_rules={"long": "close > x"},
            exit_rules={},
        )
    )
    assert continuous.grid_size() == float("inf")
    with pytest.raises(ValueError, match="continuous"):
        continuous.grid()


def test_missing_column_at_compile_time_names_rule_and_token() -> None:
    spec = load_strategy(SHIPPED / "funding_fade.json")
    bars = synthetic_bars(300).drop("funding_z")
    with pytest.raises(SpecError) as info:
        compile_signals(bars, spec)
    msg = str(info.value)
    assert "funding_fade" in msg and "entry_rules.long.0" in msg and "'funding_z'" in msg and "position 0" in msg


# --- malformed specs --------------------------------------------------------------------------

BAD = [
    ({"entry_rules": None}, "entry_rules", "valid dictionary"),
    ({"entry_rules": {}}, "entry_rules", "at least one"),
    (
        {"entry_rules": {"long": "RSX(14) > 30"}},
        "entry_rules.long.0",
        "unknown indicator or function at position 0 (token 'RSX')",
    ),
    ({"entry_rules": {"long": "close > > 3"}}, "entry_rules.long.0", "position 8"),
    ({"entry_rules": {"long": "close > SMA(m)"}}, "entry_rules.long.0", "token 'm'"),
    (
        {"entry_rules": {"long": ["close > 1", "clsoe > 2"]}},
        "entry_rules.long.1",
        "unknown name (not a parameter, column or indicator) at position 0",
    ),
    ({"exit_rules": {"long": "close < 1", "short": "close > 2"}}, "exit_rules.short", "no short entry rule"),
    (
        {"parameters": {"n": {"type": "int", "default": 50, "low": 5, "high": 20}}},
        "parameters.n",
        "outside [5.0, 20.0]",
    ),
    ({"parameters": {"n": {"type": "int", "default": 5, "low": 20, "high": 5}}}, "parameters.n", "above high"),
    ({"parameters": {"n": {"type": "int", "default": 5.5, "low": 1, "high": 9}}}, "parameters.n", "whole number"),
    ({"parameters": {"n": {"type": "choice", "default": 3, "choices": [1, 2]}}}, "parameters.n", "not one of"),
    (
        {"parameters": {"close": {"type": "int", "default": 5, "low": 1, "high": 9}}},
        "parameters.close",
        "shadows a column",
    ),
    ({"parameters": {"n": {"type": "int", "default": 5}}}, "parameters.n", "needs `low` and `high`"),
    ({"sizing": {"size_type": "LOTS", "size": 1}}, "sizing.size_type", "Input should be"),
    ({"sizing": {"size": -1}}, "sizing.size", "greater than 0"),
    ({"costs": {"fee_bps": -4}}, "costs.fee_bps", "greater than or equal to 0"),
    ({"exit_rules": {"long": "close < 1", "stop_loss_pct": 0}}, "exit_rules.stop_loss_pct", "greater than 0"),
    ({"entry_rules": {"long": "close > 1"}, "colour": "red"}, "colour", "Extra inputs"),
    ({"name": "Bad Name"}, "name", "must match"),
    ({"markets": ["moon"]}, "markets.0", "Input should be"),
    ({"timeframe": "7m"}, "timeframe", "unknown timeframe '7m'"),
]


@pytest.mark.parametrize(("patch", "key", "problem"), BAD)
def test_malformed_spec_names_file_field_and_problem(tmp_path: Path, patch: dict, key: str, problem: str) -> None:
    data = good_spec(**patch)
    name = data["name"] if data["name"] == "probe" else "probe"
    path = write(tmp_path, name, data)
    with pytest.raises(SpecError) as info:
        load_strategy(path)
    err = info.value
    assert err.file == str(path)
    assert err.key == key, str(err)
    assert problem in err.problem, str(err)
    assert str(err).startswith(f"{path}: {key}: ")


def test_invalid_json_and_name_mismatch(tmp_path: Path) -> None:
    path = write(tmp_path, "broken", '{"name": "broken",\n "description": }')
    with pytest.raises(SpecError, match=r"broken.json: line 2 column 17: not valid JSON"):
        load_strategy(path)
    path = write(tmp_path, "other", good_spec())
    with pytest.raises(SpecError, match="name 'probe' must equal the file name 'other'"):
        load_strategy(path)
    with pytest.raises(SpecError, match="file not found"):
        load_strategy(tmp_path / "missing.json")
    with pytest.raises(SpecError, match="expected a JSON object"):
        load_strategy(write(tmp_path, "listy", [1, 2]))


def test_rules_accept_one_rule_or_a_list() -> None:
    spec = parse_strategy(good_spec(entry_rules={"long": ["close > SMA(n)", "close > open"]}))
    assert isinstance(spec, StrategySpec)
    bars = synthetic_bars(400)
    out = compile_signals(bars, spec)
    both = compile_signals(bars, parse_strategy(good_spec(entry_rules={"long": "close > SMA(n) and close > open"})))
    assert out[ENTRY_LONG].equals(both[ENTRY_LONG])
    assert out[EXIT_LONG].equals(both[EXIT_LONG])
    assert spec.required_columns() == {"close", "open"}


def test_shared_indicator_columns_give_the_same_signals_as_inlined_rules() -> None:
    from lake_assets.backtests.strategy_rules import compile_rule

    spec = load_strategy(SHIPPED / "bollinger_mean_reversion.json")
    bars = synthetic_bars(1200)
    out = compile_signals(bars, spec, {"bb_period": 10, "bb_k": 1.5})
    params = spec.resolve_params({"bb_period": 10, "bb_k": 1.5})
    for col, rule in ((ENTRY_LONG, spec.entry_rules.long[0]), (EXIT_LONG, spec.exit_rules.long[0])):
        inline = bars.select(compile_rule(rule, params, bars.schema).fill_null(False).alias("s"))["s"]
        if col == ENTRY_LONG:
            inline = inline & ~bars["is_gap"]
        assert out[col].equals(inline.alias(col)), col
    assert sorted(out.columns) == sorted([*bars.columns, *SIGNAL_COLUMNS])  # temporary indicator columns dropped


# --- untrusted files: limits, non-finite numbers, isolation of a bad file ---------------------


def _json_with(data: dict, path: tuple[str, ...], literal: str) -> str:
    """`data` as JSON text with the value at `path` replaced by a raw JSON literal (e.g. Infinity)."""
    target = data
    for k in path[:-1]:
        target = target.setdefault(k, {})
    target[path[-1]] = "@@LITERAL@@"
    return json.dumps(data).replace('"@@LITERAL@@"', literal)


@pytest.mark.parametrize(
    ("path", "literal", "key"),
    [
        (("parameters", "n", "high"), "Infinity", "parameters.n.high"),
        (("parameters", "n", "low"), "-Infinity", "parameters.n.low"),
        (("parameters", "n", "default"), "NaN", "parameters.n.default"),
        (("parameters", "n", "step"), "1e400", "parameters.n.step"),  # json.loads overflows it to inf
        (("parameters", "n", "high"), "1" + "0" * 400, "parameters.n.high"),  # a whole number float() can't hold
        (("costs", "fee_bps"), "Infinity", "costs.fee_bps"),
        (("costs", "slippage_bps"), "NaN", "costs.slippage_bps"),
        (("exit_rules", "take_profit_pct"), "Infinity", "exit_rules.take_profit_pct"),
        (("sizing", "size"), "Infinity", "sizing.size"),
        (("sizing", "max_leverage"), "NaN", "sizing.max_leverage"),
    ],
)
def test_non_finite_numbers_are_errors_naming_the_field(tmp_path: Path, path: tuple, literal: str, key: str) -> None:
    file = write(tmp_path, "probe", _json_with(good_spec(), path, literal))
    with pytest.raises(SpecError) as info:
        load_strategy(file)
    assert info.value.key == key, str(info.value)
    assert "finite" in info.value.problem or "2**53" in info.value.problem, str(info.value)


def test_non_finite_choice_is_an_error(tmp_path: Path) -> None:
    spec = good_spec(parameters={"k": {"type": "choice", "default": 1, "choices": [1, "@@"]}})
    file = write(tmp_path, "probe", json.dumps(spec).replace('"@@"', "Infinity"))
    with pytest.raises(SpecError, match="parameters.k.choices: .*finite"):
        load_strategy(file)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"a": ' * 100_000, "nested too deeply"),
        ('{"name": ' + "1" * 5_000 + "}", "not valid JSON"),  # over Python's int digit limit: a ValueError
        ("\udcff", "not"),  # not UTF-8
    ],
    ids=["deep_array", "deep_object", "huge_int", "not_utf8"],
)
def test_hostile_json_is_a_spec_error(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "probe.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(SpecError, match=problem):
        load_strategy(path)


def test_spec_limits_name_the_limit(tmp_path: Path) -> None:
    from lake_assets.backtests.strategy_spec import MAX_RULES, MAX_SPEC_BYTES

    big = write(tmp_path, "probe", good_spec(description="x" * (MAX_SPEC_BYTES + 1)))
    with pytest.raises(SpecError, match="file too large.*MAX_SPEC_BYTES"):
        load_strategy(big)
    many = write(tmp_path, "probe", good_spec(entry_rules={"long": ["close > 1"] * (MAX_RULES + 1)}))
    with pytest.raises(SpecError, match=f"entry_rules.long: .*at most {MAX_RULES}"):
        load_strategy(many)
    deep = write(tmp_path, "probe", good_spec(entry_rules={"long": "(" * 10_000 + "close > 1" + ")" * 10_000}))
    with pytest.raises(SpecError, match=r"entry_rules.long.0: rule nested too deeply.*MAX_DEPTH") as info:
        load_strategy(deep)
    assert "^" in str(info.value)  # caret-style message
    huge = write(tmp_path, "probe", good_spec(entry_rules={"long": "close > 1 and " * 60_000 + "close > 1"}))
    with pytest.raises(SpecError, match=r"entry_rules.long.0: rule too long.*MAX_RULE_LENGTH"):
        load_strategy(huge)


def test_one_bad_file_is_reported_and_skipped(tmp_path: Path) -> None:
    from lake_assets.backtests.strategy_spec import load_strategies_strict

    for name in ("sma_crossover", "rsi_reversal"):
        (tmp_path / f"{name}.json").write_text((SHIPPED / f"{name}.json").read_text())
    write(tmp_path, "broken", '{"name": "broken",\n "description": }')
    write(tmp_path, "Odd Name!", "[]")
    specs = load_strategies(tmp_path)
    assert set(specs) == {"sma_crossover", "rsi_reversal"}
    assert set(specs.errors) == {"broken", specs_odd := next(k for k in specs.errors if k != "broken")}
    err = specs.errors["broken"]
    assert err.file == str(tmp_path / "broken.json") and err.key == "line 2 column 17"
    assert "not valid JSON" in err.problem
    assert specs_odd.startswith("odd_name_")  # a safe partition key for a file whose stem is not a name
    with pytest.raises(SpecError, match="Odd Name!.json"):  # the first bad file, by name
        load_strategies_strict(tmp_path)
    assert load_strategies(SHIPPED).errors == {}
