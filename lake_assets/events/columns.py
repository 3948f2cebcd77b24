"""The columns an event spec may name: bars + features + context_features + market_context.

Event specs are checked against this list when they load, so a typo in a YAML file fails at load time with the file
and key instead of producing silently empty events. Each column carries its kind so predicates can be type-checked.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from lake_assets import tables
from lake_assets.vocabulary import (
    BARS_SCHEMA,
    INSTRUMENT,
    TS,
)

ColumnKind = Literal["numeric", "bool", "string", "time"]

_BAR_KINDS: dict[str, ColumnKind] = {
    name: ("time" if name == TS else "string" if name == INSTRUMENT else "bool" if str(dt) == "Boolean" else "numeric")
    for name, dt in BARS_SCHEMA.items()
}

# The cross-team feature contract (features, per instrument x bar).
FEATURE_COLUMNS: Final[dict[str, ColumnKind]] = {
    "ret_1": "numeric",
    "rv_12": "numeric",
    "rv_48": "numeric",
    "rv_288": "numeric",
    "vol_rank": "numeric",
    "vol_regime": "string",
    "vol_of_vol": "numeric",
    "funding_z": "numeric",
    "funding_carry_ann": "numeric",
    "funding_persistence": "numeric",
    "funding_extreme": "bool",
    "carry_state": "string",
    "body_atr": "numeric",
    "upper_wick_ratio": "numeric",
    "lower_wick_ratio": "numeric",
    "range_atr": "numeric",
    "volume_z": "numeric",
    "amihud": "numeric",
    "roll_spread": "numeric",
    "spread_bps": "numeric",
    "fee_bps": "numeric",
    "ofi": "numeric",
    "oi_change": "numeric",
    "oi_z": "numeric",
    "oi_volume_ratio": "numeric",
    "liquidation_proxy": "numeric",
    "basis_bps": "numeric",
    "basis_z": "numeric",
    "trend_state": "string",
    "weekday": "numeric",
    "hour": "numeric",
    "is_month_end": "bool",
    "is_holiday": "bool",
}

CONTEXT_COLUMNS: Final[dict[str, ColumnKind]] = {
    "corr_bench": "numeric",
    "beta_bench": "numeric",
    "dispersion": "numeric",
    "corr_breakdown": "bool",
}

MARKET_CONTEXT_COLUMNS: Final[dict[str, ColumnKind]] = {
    "session": "string",
    "is_funding_ts": "bool",
    "session_open": "bool",
    "session_close": "bool",
    "macro_window": "string",
}

KNOWN_COLUMNS: Final[dict[str, ColumnKind]] = {
    **_BAR_KINDS,
    **FEATURE_COLUMNS,
    **CONTEXT_COLUMNS,
    **MARKET_CONTEXT_COLUMNS,
}

# TA columns follow `<indicator>_<params>[_<output>]`, lower-case (rsi_14, macd_12_26_9_hist, bb_20_2_pctb, ...).
_NUM = r"\d+(?:\.\d+)?"
TA_COLUMN_PATTERN: Final = re.compile(
    rf"^(?:(?:sma|ema|rsi|atr|adx|cci|mfi|willr|roc)_{_NUM}"
    rf"|macd_{_NUM}_{_NUM}_{_NUM}(?:_(?:macd|signal|hist))?"
    rf"|bb_{_NUM}_{_NUM}(?:_(?:mid|upper|lower|pctb|width))?"
    rf"|stoch_{_NUM}_{_NUM}(?:_(?:k|d))?"
    rf"|donchian_{_NUM}(?:_(?:upper|lower|mid))?"
    rf"|keltner_{_NUM}_{_NUM}(?:_(?:mid|upper|lower))?"
    r"|obv)$"
)

# State snapshot copied onto every event row (null when the input lacks the column); declared with the registry.
STATE_COLUMNS: Final = tables.STATE_COLUMNS


def column_kind(name: str) -> ColumnKind | None:
    """The kind of a known column, or None when the name is not part of the contract."""
    if name in KNOWN_COLUMNS:
        return KNOWN_COLUMNS[name]
    if TA_COLUMN_PATTERN.fullmatch(name):
        return "numeric"
    return None
