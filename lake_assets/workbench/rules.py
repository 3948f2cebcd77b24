"""The default signal rule of each catalogue indicator, in the strategy rule language (backtests/strategy_rules.py).

Each indicator votes every bar: +1 while its long rule holds, -1 while its short rule holds, else 0. Rules are
states (not one-bar events), so votes of several indicators can be blended bar by bar (blend.py). A rule's own
parameters (thresholds) are given with the indicator's parameters in a RunConfig (`params`), with these defaults.

| indicator | long vote | short vote | rule parameters |
|---|---|---|---|
| RSI(n) | RSI below `oversold` | RSI above `overbought` | oversold 30, overbought 70 |
| MACD(fast, slow, signal) | MACD above its signal line (histogram > 0: the cross) | histogram < 0 | |
| BBANDS(n, k) | close touches/below the lower band | close at/above the upper band | |
| KELTNER(n, k) | close at/below the lower channel | close at/above the upper channel | |
| DONCHIAN(n) | close breaks above the previous bar's n-bar high | breaks below the previous low | |
| SMA(n), EMA(n) | close above the average | close below | |
| ROC(n) | rate of change > 0 | < 0 | |
| STOCH(k, d) | %K below `oversold` | %K above `overbought` | oversold 20, overbought 80 |
| WILLR(n) | Williams %R below `oversold` | above `overbought` | oversold -80, overbought -20 |
| CCI(n) | CCI below -`level` | CCI above `level` | level 100 |
| MFI(n) | MFI below `oversold` | MFI above `overbought` | oversold 20, overbought 80 |
| ADX(n) | ADX above `level` and close above its n-bar-ago close | ADX above `level`, close below | level 25 |

ATR and OBV have no directional rule: a RunConfig that names them is refused with that reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from lake_assets.backtests.strategy_rules import compile_rule, indicator_catalogue


@dataclass(frozen=True)
class SignalRule:
    long: str
    short: str
    params: dict[str, float] = field(default_factory=dict)  # the rule's own parameters and their defaults
    doc: str = ""


SIGNAL_RULES: dict[str, SignalRule] = {
    "RSI": SignalRule("RSI(n) < oversold", "RSI(n) > overbought", {"oversold": 30.0, "overbought": 70.0},
                      "RSI thresholds: long while oversold, short while overbought"),
    "MACD": SignalRule("MACD(fast, slow, signal) histogram > 0", "MACD(fast, slow, signal) histogram < 0", {},
                       "MACD cross: long while MACD is above its signal line"),
    "BBANDS": SignalRule("close <= BBANDS(n, k) lower", "close >= BBANDS(n, k) upper", {},
                         "Bollinger touch: long at the lower band, short at the upper band"),
    "KELTNER": SignalRule("close <= KELTNER(n, k) lower", "close >= KELTNER(n, k) upper", {},
                          "Keltner touch: long at the lower channel, short at the upper"),
    "DONCHIAN": SignalRule("close > DONCHIAN(n) upper[1]", "close < DONCHIAN(n) lower[1]", {},
                           "Donchian break of the previous bar's channel"),
    "SMA": SignalRule("close > SMA(n)", "close < SMA(n)", {}, "price above/below its simple moving average"),
    "EMA": SignalRule("close > EMA(n)", "close < EMA(n)", {}, "price above/below its exponential moving average"),
    "ROC": SignalRule("ROC(n) > 0", "ROC(n) < 0", {}, "momentum: sign of the n-bar rate of change"),
    "STOCH": SignalRule("STOCH(k, d).k < oversold", "STOCH(k, d).k > overbought",
                        {"oversold": 20.0, "overbought": 80.0}, "stochastic %K thresholds"),
    "WILLR": SignalRule("WILLR(n) < oversold", "WILLR(n) > overbought", {"oversold": -80.0, "overbought": -20.0},
                        "Williams %R thresholds"),
    "CCI": SignalRule("CCI(n) < -level", "CCI(n) > level", {"level": 100.0}, "CCI beyond +-level"),
    "MFI": SignalRule("MFI(n) < oversold", "MFI(n) > overbought", {"oversold": 20.0, "overbought": 80.0},
                      "money flow index thresholds"),
    "ADX": SignalRule("ADX(n) > level and close > close[n]", "ADX(n) > level and close < close[n]", {"level": 25.0},
                      "trend strength above level, in the direction of the n-bar move"),
}  # fmt: skip


def indicator_params(name: str) -> dict[str, float | None]:
    """Every parameter a RunConfig may give an indicator: its numeric parameters (None = required) and its rule's."""
    info = indicator_catalogue()[name.upper()]
    out: dict[str, float | None] = {k: info.params[k] for k in info.numeric_params}
    out.update(SIGNAL_RULES[name.upper()].params)
    return out


INT_PARAMS = frozenset({"n", "fast", "slow", "signal", "k_window"})


def resolved_params(name: str, given: Mapping[str, float]) -> dict[str, Any]:
    """Defaults filled in; window parameters as ints (a tuned float 14.0 is the window 14)."""
    name = name.upper()
    out: dict[str, Any] = {k: v for k, v in indicator_params(name).items() if v is not None}
    out.update(given)
    info = indicator_catalogue()[name]
    for k, v in list(out.items()):
        default = info.params.get(k)
        if k in INT_PARAMS or (isinstance(default, int) and not isinstance(default, bool)):
            out[k] = int(round(float(v)))
        else:
            out[k] = float(v)
    return out


def vote_exprs(
    name: str, params: Mapping[str, float], schema: Mapping[str, Any], shared: dict[str, pl.Expr]
) -> pl.Expr:
    """The indicator's vote (+1 / 0 / -1, Int8) as an expression; indicator outputs are registered in `shared`."""
    rule = SIGNAL_RULES[name.upper()]
    bound = resolved_params(name, params)
    long = compile_rule(rule.long, bound, columns=schema, shared=shared).fill_null(False)
    short = compile_rule(rule.short, bound, columns=schema, shared=shared).fill_null(False)
    return (long.cast(pl.Int8) - short.cast(pl.Int8)).cast(pl.Int8)
