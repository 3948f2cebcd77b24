"""The canonical trading vocabulary: Signal, Order, Fill, Position, Trade, their enums and table schemas.

Every producer (strategy compiler, model signals, blueprints, the paper loop) and every consumer (engine, audit
tables, DuckDB views, reports) uses these definitions, so an order means the same thing everywhere.
The integer codes (`code`) are what the compiled engine stores; the string values are what tables hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import polars as pl

from lake_assets import tables
from lake_assets.vocabulary import INSTRUMENT, SIDE, SIZE, TS, TS_DTYPE


class _Coded(StrEnum):
    """A string enum whose members also have a stable small-integer code for numba arrays."""

    @property
    def code(self) -> int:
        return list(type(self)).index(self)

    @classmethod
    def from_code(cls, code: int) -> _Coded:
        return list(cls)[code]


class Side(_Coded):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class Action(_Coded):
    ENTRY = "ENTRY"
    EXIT = "EXIT"  # close the whole position of the order's strategy in the instrument (size ignored)
    MODIFY = "MODIFY"  # change size / limit / stop of a pending order (`ref_order_id`)
    CANCEL = "CANCEL"  # cancel a pending order (`ref_order_id`)


class OrderType(_Coded):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class SizeType(_Coded):
    SHARES = "SHARES"
    CONTRACTS = "CONTRACTS"  # same arithmetic as SHARES (contract multiplier 1)
    NOTIONAL = "NOTIONAL"  # quote currency; +inf means "all available cash" (vectorbt's size=np.inf)
    RISK_PERCENT = "RISK_PERCENT"  # fraction of equity lost if the stop (`stop_distance`) is hit
    EQUITY_PERCENT = "EQUITY_PERCENT"  # position notional as a fraction of equity (vol target, Kelly, % equity)


class OrderStatus(_Coded):
    NEW = "NEW"
    FILLED = "FILLED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


class Liquidity(_Coded):
    TAKER = "TAKER"
    MAKER = "MAKER"


class Direction(_Coded):
    LONG = "LONG"
    SHORT = "SHORT"


class TradeStatus(_Coded):
    CLOSED = "CLOSED"
    OPEN = "OPEN"  # still open at the end of the data, marked at the last valid close


@dataclass(frozen=True, slots=True)
class Signal:
    """An intent emitted by a strategy at the close of bar `ts`; the engine turns it into an order."""

    ts: datetime
    instrument: str
    side: Side
    action: Action = Action.ENTRY
    strength: float = 1.0
    strategy: str = "default"
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Order:
    """An order submitted at the close of bar `ts`; it can fill from the next bar (plus latency) on."""

    order_id: int
    ts: datetime
    instrument: str
    side: Side
    size: float
    action: Action = Action.ENTRY
    order_type: OrderType = OrderType.MARKET
    size_type: SizeType = SizeType.SHARES
    limit_price: float | None = None
    stop_price: float | None = None
    stop_distance: float | None = None  # price distance to the protective stop, for RISK_PERCENT sizing
    time_in_force_bars: int | None = None  # None = good till cancelled
    ref_order_id: int | None = None  # target of MODIFY / CANCEL
    strategy: str = "default"
    status: OrderStatus = OrderStatus.NEW
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    order_id: int
    ts: datetime
    instrument: str
    side: Side
    price: float
    size: float
    fee: float
    slippage_cost: float
    liquidity: Liquidity
    strategy: str = "default"


@dataclass(slots=True)
class Position:
    instrument: str
    size: float = 0.0  # signed units: > 0 long, < 0 short
    avg_price: float = 0.0
    strategy: str = "default"
    realized_pnl: float = 0.0
    fees: float = 0.0
    funding: float = 0.0

    @property
    def direction(self) -> Direction | None:
        return None if self.size == 0 else (Direction.LONG if self.size > 0 else Direction.SHORT)


@dataclass(frozen=True, slots=True)
class Trade:
    trade_id: int
    instrument: str
    direction: Direction
    entry_ts: datetime
    exit_ts: datetime | None
    entry_price: float
    exit_price: float
    size: float
    pnl: float  # net of this trade's share of fees and funding
    fees: float
    funding: float
    status: TradeStatus = TradeStatus.CLOSED
    strategy: str = "default"
    entry_bar: int = field(default=-1, compare=False)
    exit_bar: int = field(default=-1, compare=False)


# --- table schemas (audit tables and DuckDB views) ---------------------------------------------


def _schema(cols: dict[str, Any]) -> pl.Schema:
    return pl.Schema(cols)


ORDER_ID: Final = "order_id"
STRATEGY: Final = "strategy"

# The engine's tables; the lake tables add `book` (the equity table also `strategy`), declared in lake_assets/tables.py
ORDERS_SCHEMA: Final = tables.ORDERS.schema_without("book")
FILLS_SCHEMA: Final = tables.FILLS.schema_without("book")
TRADES_SCHEMA: Final = tables.TRADES.schema_without("book")  # pnl = gross - fees - funding; return = pnl / notional
RISK_EVENTS_SCHEMA: Final = tables.RISK_EVENTS.schema_without("book")  # order_id null for portfolio-level events
EQUITY_SCHEMA: Final = tables.EQUITY.schema_without(STRATEGY, "book")

# The input frame of explicit orders accepted by `engine.run_orders` (output columns are filled in by the engine).
ORDER_INPUT_SCHEMA: Final = _schema(
    {
        ORDER_ID: pl.Int64,
        TS: TS_DTYPE,
        INSTRUMENT: pl.String,
        STRATEGY: pl.String,
        SIDE: pl.String,
        "action": pl.String,
        "order_type": pl.String,
        "size_type": pl.String,
        SIZE: pl.Float64,
        "limit_price": pl.Float64,
        "stop_price": pl.Float64,
        "stop_distance": pl.Float64,
        "time_in_force_bars": pl.Int64,
        "ref_order_id": pl.Int64,
    }
)
