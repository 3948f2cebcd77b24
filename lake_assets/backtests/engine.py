"""Backtest engine: bars + signals (or explicit orders) -> orders, fills, trades, equity, risk events.

Two entry points share one simulator (`engine_kernels.simulate_nb`):
- `run_signals`: boolean entry/exit columns per (strategy, instrument), vectorbt `from_signals` semantics, sized by
  a `risk.Sizing`. vectorbt's signal modes, same names, values and defaults (parity per mode, both paths, in
  tests/backtests/test_parity_modes.py):
  - `accumulate`: False (an entry while in the same direction is ignored), True / "both" (entries add `size`, exits
    and opposite entries remove `size`), "addonly", "removeonly".
  - `upon_opposite_entry` (an entry against the position): "ignore", "close" (close only), "closereduce" (close, or
    reduce by `size` when accumulating), "reverse" (close and open `size` the other way), "reversereduce" (default:
    reverse, or reduce by `size` when accumulating, flipping if larger).
  - `upon_long_conflict` / `upon_short_conflict` (entry and exit of one direction on one bar): "ignore" (default),
    "entry", "exit", "adjacent" (the one of the held direction), "opposite"; `upon_dir_conflict` (long and short
    entry on one bar): "ignore" (default), "long", "short", "adjacent", "opposite".
  - `sl_stop` / `tp_stop` (fractions of the entry price) and `sl_trail` (the stop-loss follows the best high/low):
    checked each bar after the fills at the open, stop-loss before take-profit, filled at the level (the open if
    the bar opened through it) without slippage at the maker fee (vectorbt's stop_exit_price="stoplimit"), anchored
    at the entry fill's reference price (the close in fill_at="close", vectorbt's stop_entry_price="close"; the open
    in "next_open"), restarted when the position grows; in fill_at="close" a bar whose stop fired ignores its
    signals (vectorbt). A sale whose proceeds cannot pay its fixed fee fills (vectorbt rejects it).
  backtesting.py's modes (parity in tests/backtests/test_parity_backtesting.py): whole-unit orders for a fraction of
  equity (`percent_equity(f, whole_units=True)`, its `buy(size=f)`), an entry-only spread
  (`EngineConfig.entry_spread`, its `spread`; a signal reversal becomes an exit then an entry, as its exclusive
  orders), partial closes (an `exit_portion` signals column, its `position.close(portion)`), and its trade_on_close
  handling of a stopped bar's signals (`stop_ignores_signals=False`).
- `run_orders`: explicit MARKET / LIMIT / STOP / STOP_LIMIT orders with ENTRY / EXIT / MODIFY / CANCEL actions.
Timing: an order submitted at bar i (known at its close) fills at the open of bar i+1+latency ("next_open",
default) or for market orders at the close of bar i+latency ("close"; vectorbt's default price=close).
`run_signals_batch` is the compiled fast path for many independent single-instrument columns (optimisers,
benchmarks); `run_signals` uses it automatically when the case is simple and gives identical results.
Frames go in and out without per-row Python: grid and signal arrays come straight from the frames' buffers (and
only the ones the chosen path reads), result frames are one polars `select` each over the kernels' record arrays.

Semantics shared with the peers (tested live against them in tests/backtests/test_engine_peer_semantics.py):
- Equity-percent sizing (the default, 100% of equity) is cost-inclusive like vectorbt's size=inf: the fraction of
  equity pays for units, slippage and fees, so all-in sizing never borrows under a 1.0 leverage cap.
- All-cash (infinite notional) sells are sized as vectorbt 1.2 sizes them: the long is closed and a short opened
  with the free cash (cash minus twice the open shorts' entry value, plus the long's net proceeds).
- A signal's order has one fill bar (its close, or the next open); without a price there it expires, as vectorbt
  drops it (`EngineConfig.signals_wait_for_price=True` keeps it waiting for the next priced bar).
- Fills inside a bar: first those at the open (in submission order), then stop orders touched inside the bar, then
  limit orders (a bracket's stop-loss before its take-profit). Orders against a position opened inside the bar
  wait for the next bar (backtesting.py defers them too; vectorbt checks stops from the next bar). EXIT orders
  submitted while flat wait for a position; once their slot has held one, finding it flat cancels them (OCO).

Different by design (ENGINE_NOTES.md has the reasons):
- Covering a short whose buy-back costs more than the cash held: qlake covers in full and cash may go negative;
  vectorbt covers what cash allows. An exit means flat; the deficit shows in equity, not as a residual short.
- A trade still open at the end is marked at the last close (as vectorbt); backtesting.py closes it at the last
  bar's open (`finalize_trades`).
- An order whose opening part exceeds an exposure cap is resized with a RESIZED risk event (default); backtesting.py
  cancels it: `RiskLimits(on_cap="reject")` does that (REJECTED event; a reversal's closing part still fills).
- A bar that opens above a long's take-profit order fills it at the open, even if the bar later touches the stop
  order; vectorbt and backtesting.py check the stop first and fill it there (explicit orders; the signal stops
  `sl_stop` / `tp_stop` check the stop-loss first, as vectorbt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Literal

import numpy as np
import polars as pl

from lake_assets.backtests import engine_kernels as core
from lake_assets.backtests.costs import ADV_NOTIONAL, HALF_SPREAD, SIGMA, CostProfile, cost_inputs
from lake_assets.backtests.risk import RiskLimits, Sizing
from lake_assets.backtests.schema import (
    EQUITY_SCHEMA,
    ORDER_ID,
    RISK_EVENTS_SCHEMA,
    STRATEGY,
    Action,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    SizeType,
    _Coded,
)
from lake_assets.vocabulary import CLOSE, FUNDING_RATE, HIGH, INSTRUMENT, LOW, OPEN, TS, TS_DTYPE, VOLUME

LONG_ENTRY, LONG_EXIT, SHORT_ENTRY, SHORT_EXIT = "long_entry", "long_exit", "short_entry", "short_exit"
SIGNAL_COLUMNS = (LONG_ENTRY, LONG_EXIT, SHORT_ENTRY, SHORT_EXIT)
DEFAULT_STRATEGY = "default"

Accumulate = bool | Literal["both", "addonly", "removeonly"]
OppositeEntry = Literal["ignore", "close", "closereduce", "reverse", "reversereduce"]
Conflict = Literal["ignore", "entry", "exit", "adjacent", "opposite"]
DirConflict = Literal["ignore", "long", "short", "adjacent", "opposite"]
_ACCUMULATE = {False: core.ACC_DISABLED, True: core.ACC_BOTH, "both": core.ACC_BOTH,
               "addonly": core.ACC_ADD_ONLY, "removeonly": core.ACC_REMOVE_ONLY}  # fmt: skip
_OPPOSITE = {"ignore": core.OPP_IGNORE, "close": core.OPP_CLOSE, "closereduce": core.OPP_CLOSE_REDUCE,
             "reverse": core.OPP_REVERSE, "reversereduce": core.OPP_REVERSE_REDUCE}  # fmt: skip
_CONFLICT = {"ignore": core.CONFLICT_IGNORE, "entry": core.CONFLICT_ENTRY, "exit": core.CONFLICT_EXIT,
             "adjacent": core.CONFLICT_ADJACENT, "opposite": core.CONFLICT_OPPOSITE}  # fmt: skip
_DIR_CONFLICT = {"ignore": core.DIR_IGNORE, "long": core.DIR_LONG, "short": core.DIR_SHORT,
                 "adjacent": core.DIR_ADJACENT, "opposite": core.DIR_OPPOSITE}  # fmt: skip


def _code(table: dict, name: str, value: object) -> int:  # type: ignore[type-arg]
    key = value.lower() if isinstance(value, str) else value
    if key not in table:
        raise ValueError(f"{name} must be one of {sorted(map(str, table))}, got {value!r}")
    return int(table[key])


def signal_rules(
    accumulate: Accumulate = False,
    upon_opposite_entry: OppositeEntry = "reversereduce",
    upon_long_conflict: Conflict = "ignore",
    upon_short_conflict: Conflict = "ignore",
    upon_dir_conflict: DirConflict = "ignore",
) -> core.SignalRules:
    """vectorbt `Portfolio.from_signals` modes (same names, values and defaults) as the kernels' codes."""
    return core.SignalRules(
        accumulate=_code(_ACCUMULATE, "accumulate", accumulate),
        opposite_entry=_code(_OPPOSITE, "upon_opposite_entry", upon_opposite_entry),
        long_conflict=_code(_CONFLICT, "upon_long_conflict", upon_long_conflict),
        short_conflict=_code(_CONFLICT, "upon_short_conflict", upon_short_conflict),
        dir_conflict=_code(_DIR_CONFLICT, "upon_dir_conflict", upon_dir_conflict),
    )


def _stops(sl_stop: float | None, tp_stop: float | None, sl_trail: bool) -> tuple[float, float, bool]:
    for name, v in (("sl_stop", sl_stop), ("tp_stop", tp_stop)):
        if v is not None and not (0 < v < math.inf):
            raise ValueError(f"{name} must be a positive fraction of the entry price or None, got {v!r}")
    if sl_trail and sl_stop is None:
        raise ValueError("sl_trail needs sl_stop")
    return (math.nan if sl_stop is None else float(sl_stop), math.nan if tp_stop is None else float(tp_stop), sl_trail)


REASONS: dict[int, str] = {
    core.R_NONPOSITIVE_SIZE: "size must be a positive number",
    core.R_BAD_PRICE: "limit/stop price must be a positive finite number",
    core.R_STRATEGY_CAP: "resized: strategy exposure cap",
    core.R_INSTRUMENT_CAP: "resized: instrument exposure cap",
    core.R_PORTFOLIO_CAP: "resized: portfolio leverage cap",
    core.R_NEW_EXPOSURE_CAP: "resized: new exposure per bar cap",
    core.R_KILL_SWITCH: "rejected: kill switch active",
    core.R_DAILY_LOSS: "rejected: daily loss cap / cooldown",
    core.R_SHORT_DISABLED: "rejected: short selling disabled",
    core.R_NO_EQUITY: "rejected: no equity or cash left",
    core.R_PARTICIPATION: "partial: participation cap of bar volume",
    core.R_EXPIRED: "expired: time in force elapsed",
    core.R_CANCELLED: "cancelled by a CANCEL order",
    core.R_REPLACED: "cancelled: replaced by a newer signal",
    core.R_NO_POSITION: "cancelled: no position to exit",
    core.R_BAD_STOP_DISTANCE: "RISK_PERCENT sizing needs a positive stop_distance",
    core.R_MODIFIED: "modified by a MODIFY order",
    core.R_KILL_DRAWDOWN: "kill switch: max drawdown breached",
    core.R_KILL_STALE: "kill switch: stale data on a held instrument",
    core.R_KILL_SLIPPAGE: "kill switch: realised/expected slippage ratio breached",
    core.R_DAILY_CAP_HIT: "daily loss cap hit: entries blocked until next day + cooldown",
    core.R_UNKNOWN_REF: "MODIFY/CANCEL target is not a pending order",
    core.R_END_OF_DATA: "still pending at the end of the data",
    core.R_EXIT_SIDE: "exit side does not close the position",
    core.R_ALL_CASH_SHORT: "rejected: no position to close and no free cash for an all-cash short",
    core.R_NO_PRICE: "expired: the signal's fill bar has no price",
    core.R_CAP_REJECT_OFFSET + core.R_STRATEGY_CAP: "rejected: strategy exposure cap",
    core.R_CAP_REJECT_OFFSET + core.R_INSTRUMENT_CAP: "rejected: instrument exposure cap",
    core.R_CAP_REJECT_OFFSET + core.R_PORTFOLIO_CAP: "rejected: portfolio leverage cap",
    core.R_CAP_REJECT_OFFSET + core.R_NEW_EXPOSURE_CAP: "rejected: new exposure per bar cap",
}
EVENT_KINDS = {
    core.EV_REJECTED: "REJECTED",
    core.EV_RESIZED: "RESIZED",
    core.EV_KILL: "KILL_SWITCH",
    core.EV_DAILY: "DAILY_LOSS_CAP",
    core.EV_PARTIAL: "PARTIAL_FILL",
    core.EV_CANCELLED: "CANCELLED",
}


@dataclass(frozen=True)
class EngineConfig:
    """Execution, cost and risk settings. Fees and slippage are fractions of notional / price."""

    init_cash: float = 100_000.0
    fill_at: Literal["next_open", "close"] = "next_open"
    latency_bars: int = 0
    maker_fee: float = 0.0
    taker_fee: float = 0.0
    fixed_fee: float = 0.0  # per fill, quote currency
    slippage: float = 0.0  # fixed slippage fraction on taker fills
    default_spread_bps: float = 0.0  # full spread proxy when bars carry no `spread_bps`
    vol_k: float = 0.0
    vol_window: int = 48
    liquidity_k: float = 0.0
    adv_window: int = 288
    impact_k: float = 0.0
    participation_rate: float | None = None  # cap on fill units as a fraction of bar volume
    allow_short: bool = True
    risk: RiskLimits = field(default_factory=RiskLimits)
    # a signal's market order gets one fill bar (its own close, or the next open): when that bar has no price the
    # order expires, as vectorbt drops it (a fill a bar later would be at a price the signal never saw). True keeps
    # it pending until the next priced bar (qlake's behaviour before). Explicit orders always follow their TIF.
    signals_wait_for_price: bool = False
    # backtesting.py's `spread`: an opening fill pays price * (1 + spread) (buy) / (1 - spread) (sell short), a
    # closing fill is at the unadjusted price; a signal reversal becomes an exit and an entry (its exclusive orders)
    entry_spread: float = 0.0

    def __post_init__(self) -> None:
        if not self.init_cash > 0:
            raise ValueError(f"EngineConfig.init_cash must be > 0, got {self.init_cash!r}")
        if self.fill_at not in ("next_open", "close"):
            raise ValueError(f"EngineConfig.fill_at must be 'next_open' or 'close', got {self.fill_at!r}")
        if self.latency_bars < 0:
            raise ValueError("EngineConfig.latency_bars must be >= 0")
        names = ("maker_fee", "taker_fee", "fixed_fee", "slippage", "vol_k", "liquidity_k", "impact_k", "entry_spread")
        for name in names:
            if not getattr(self, name) >= 0:
                raise ValueError(f"EngineConfig.{name} must be >= 0")
        if self.participation_rate is not None and not 0 < self.participation_rate <= 1:
            raise ValueError("EngineConfig.participation_rate must be in (0, 1] or None")

    @classmethod
    def from_costs(cls, profile: CostProfile, **overrides: object) -> EngineConfig:
        """Realistic settings from a spec/costs.yaml profile."""
        base = cls(
            maker_fee=profile.maker_fee_bps / 1e4,
            taker_fee=profile.taker_fee_bps / 1e4,
            fixed_fee=profile.fixed_fee,
            slippage=profile.fixed_slippage_bps / 1e4,
            default_spread_bps=profile.default_spread_bps,
            vol_k=profile.vol_k,
            vol_window=profile.vol_window,
            liquidity_k=profile.liquidity_k,
            adv_window=profile.adv_window,
            impact_k=profile.impact_k,
            participation_rate=profile.participation_rate,
        )
        return replace(base, **overrides)  # type: ignore[arg-type]

    @classmethod
    def vectorbt_compatible(cls, fees: float = 0.0, slippage: float = 0.0, **overrides: object) -> EngineConfig:
        """Parity mode with vectorbt `Portfolio.from_signals(close, ..., fees, slippage)`: fill at the signal bar's
        close, same fee/slippage arithmetic, no spread/impact/participation, no risk layer."""
        base = cls(fill_at="close", maker_fee=fees, taker_fee=fees, slippage=slippage, risk=RiskLimits.disabled())
        return replace(base, **overrides)  # type: ignore[arg-type]

    @property
    def dynamic_costs(self) -> bool:
        return self.default_spread_bps > 0 or self.vol_k > 0 or self.liquidity_k > 0 or self.impact_k > 0

    def params(
        self,
        sig_size_type: SizeType,
        rules: core.SignalRules | None = None,
        stops: tuple[float, float, bool] = (math.nan, math.nan, False),
        whole_units: bool = False,
        stop_ignores_signals: bool = True,
    ) -> core.Params:
        """Kernel settings; `rules` and `stops` (sl_stop, tp_stop, sl_trail) are `run_signals`' signal modes."""
        r = self.risk

        def _opt(v: float | None) -> float:
            return math.inf if v is None else float(v)

        return core.Params(
            init_cash=float(self.init_cash),
            fill_close=self.fill_at == "close",
            latency=int(self.latency_bars),
            maker_fee=float(self.maker_fee),
            taker_fee=float(self.taker_fee),
            fixed_fee=float(self.fixed_fee),
            slippage=float(self.slippage),
            vol_k=float(self.vol_k),
            liq_k=float(self.liquidity_k),
            impact_k=float(self.impact_k),
            participation=_opt(self.participation_rate),
            max_leverage=_opt(r.max_leverage),
            max_strategy=_opt(r.max_strategy_exposure),
            max_instrument=_opt(r.max_instrument_exposure),
            max_new=_opt(r.max_new_exposure_per_bar),
            daily_loss=_opt(r.daily_loss_cap),
            cooldown=int(r.cooldown_bars),
            max_stale=_opt(r.max_stale_bars),
            max_dd=_opt(r.max_drawdown),
            max_slip_ratio=_opt(r.max_slippage_ratio),
            min_slip_fills=int(r.min_fills_for_slippage),
            flatten_on_kill=bool(r.flatten_on_kill),
            allow_short=bool(self.allow_short),
            sig_size_type=int(sig_size_type.code),
            sig_wait=bool(self.signals_wait_for_price),
            cap_reject=r.on_cap == "reject",
            rules=rules or core.SignalRules(),
            sl_stop=float(stops[0]),
            tp_stop=float(stops[1]),
            sl_trail=bool(stops[2]),
            entry_spread=float(self.entry_spread),
            sig_whole_units=bool(whole_units),
            stop_ignores_signals=bool(stop_ignores_signals),
        )


@dataclass(frozen=True)
class BacktestResult:
    orders: pl.DataFrame  # ORDERS_SCHEMA
    fills: pl.DataFrame  # FILLS_SCHEMA
    trades: pl.DataFrame  # TRADES_SCHEMA
    equity: pl.DataFrame  # EQUITY_SCHEMA, one row per bar
    risk_events: pl.DataFrame  # RISK_EVENTS_SCHEMA
    funding_payments: pl.DataFrame  # ts, instrument, strategy, funding_rate, mark_price, payment
    positions: pl.DataFrame  # final positions: instrument, strategy, size, mark_price
    init_cash: float
    used_fast_path: bool = False

    @property
    def final_equity(self) -> float:
        return float(self.equity[-1, "equity"]) if self.equity.height else self.init_cash


@dataclass(frozen=True)
class _Grid:
    ts: np.ndarray  # datetime64[us]
    ts_series: pl.Series
    instruments: list[str]
    arrays: dict[str, np.ndarray]  # (n_bars, n_instruments)


_GRID_COLS = (OPEN, HIGH, LOW, CLOSE, VOLUME, HALF_SPREAD, SIGMA, ADV_NOTIONAL)
_COST_COLS = (HALF_SPREAD, SIGMA, ADV_NOTIONAL)


class _FrameColumns(dict[str, np.ndarray]):
    """Grid arrays (n_bars, 1) of a frame that already is the grid (one instrument, increasing ts), copied out on
    first use: the fast path reads only open and close. Cost inputs the config does not use are one shared NaN
    array (the kernels only read them)."""

    def __init__(self, frame: pl.DataFrame, costs_in_frame: bool) -> None:
        super().__init__()
        self._frame = frame
        self._costs_in_frame = costs_in_frame

    def __missing__(self, col: str) -> np.ndarray:
        if col not in _GRID_COLS:
            raise KeyError(col)
        if col in _COST_COLS and not self._costs_in_frame:
            shared = next((self[c] for c in _COST_COLS if c in self), None)
            arr = np.full((self._frame.height, 1), np.nan) if shared is None else shared
        else:
            arr = np.array(self._frame[col].cast(pl.Float64).to_numpy(), dtype=np.float64).reshape(-1, 1)
        self[col] = arr
        return arr


def _is_constant(s: pl.Series) -> bool:
    """True when every value is the same non-null one: the one-instrument / one-strategy fast case."""
    return s.len() > 0 and s.null_count() == 0 and s.min() == s.max()


def _grid(bars: pl.DataFrame, config: EngineConfig) -> _Grid:
    missing = [c for c in (TS, INSTRUMENT, OPEN, HIGH, LOW, CLOSE) if c not in bars.columns]
    if missing:
        raise ValueError(f"bars: missing columns {missing}")
    if bars.height == 0:
        raise ValueError("bars: empty frame")
    b = bars if bars.schema[TS] == TS_DTYPE else bars.with_columns(pl.col(TS).cast(TS_DTYPE))
    inst_col = b[INSTRUMENT]
    single = inst_col.null_count() == b.height or _is_constant(inst_col)
    t_raw = b[TS].to_numpy().view(np.int64)
    increasing = bool(np.all(t_raw[1:] > t_raw[:-1]))
    if not (single and increasing) and b.select(pl.struct(TS, INSTRUMENT).is_duplicated().any()).item():
        raise ValueError("bars: duplicate (ts, instrument) rows")
    if VOLUME not in b.columns:
        b = b.with_columns(pl.lit(None, dtype=pl.Float64).alias(VOLUME))
    # cost inputs are only computed (and joined) when a dynamic cost term needs them; otherwise they stay NaN
    cols = _GRID_COLS if config.dynamic_costs else (OPEN, HIGH, LOW, CLOSE, VOLUME)
    if config.dynamic_costs:
        profile = CostProfile(
            default_spread_bps=config.default_spread_bps,
            vol_window=config.vol_window,
            adv_window=config.adv_window,
        )
        b = b.join(cost_inputs(b, profile), on=[TS, INSTRUMENT], how="left")
    if single and increasing:
        # already the grid: columns are taken from the frame when first needed
        ts = b[TS]
        return _Grid(ts.to_numpy(), ts, [b[INSTRUMENT][0]], _FrameColumns(b, config.dynamic_costs))
    arrays: dict[str, np.ndarray] = {}
    ts = b.select(pl.col(TS).unique().sort()).to_series()
    clock = ts.to_physical().to_numpy()
    parts = b.partition_by(INSTRUMENT, as_dict=True)
    instruments = sorted(k[0] for k in parts)
    for col in _GRID_COLS:
        arrays[col] = np.full((ts.len(), len(instruments)), np.nan)
    for j, inst in enumerate(instruments):
        part = parts[(inst,)]
        # each (ts, instrument) is unique (checked above), so placing rows at their clock position is the left join
        # of the clock with the instrument's rows, without building the joined frame
        rows = np.searchsorted(clock, part[TS].to_physical().to_numpy())
        for col in cols:
            arrays[col][rows, j] = part[col].cast(pl.Float64).to_numpy()
    return _Grid(ts.to_numpy(), ts, instruments, arrays)


def _bar_index(grid: _Grid, ts: pl.Series, side: Literal["asof", "next"]) -> np.ndarray:
    """Map timestamps to bar indices: 'asof' = last bar starting at or before ts, 'next' = first bar at/after."""
    t = ts.cast(TS_DTYPE).to_numpy()
    if side == "asof":
        return np.searchsorted(grid.ts, t, side="right").astype(np.int64) - 1
    return np.searchsorted(grid.ts, t, side="left").astype(np.int64)


def _days(grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """Per bar: does it open a new UTC day, and the index of the first bar of the next day (n if none)."""
    return core.day_bounds_nb(np.ascontiguousarray(grid.ts.view(np.int64)))


def _funding(grid: _Grid, funding: pl.DataFrame | None) -> np.ndarray:
    out = np.full((grid.ts.shape[0], len(grid.instruments)), np.nan)
    if funding is None or funding.height == 0:
        return out
    missing = [c for c in (TS, INSTRUMENT, FUNDING_RATE) if c not in funding.columns]
    if missing:
        raise ValueError(f"funding: missing columns {missing}")
    f = funding.filter(pl.col(FUNDING_RATE).is_not_null() & pl.col(INSTRUMENT).is_in(grid.instruments))
    idx = _bar_index(grid, f[TS], "next")
    inst = {s: j for j, s in enumerate(grid.instruments)}
    for i, s, r in zip(idx, f[INSTRUMENT].to_list(), f[FUNDING_RATE].to_list(), strict=True):
        if 0 <= i < out.shape[0]:
            j = inst[s]
            out[i, j] = r if np.isnan(out[i, j]) else out[i, j] + r
    return out


def _slots(pairs: list[tuple[str, str]], grid: _Grid) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray]:
    slots = sorted(set(pairs))
    strategies = sorted({s for s, _ in slots})
    inst = {s: j for j, s in enumerate(grid.instruments)}
    unknown = sorted({i for _, i in slots if i not in inst})
    if unknown:
        raise ValueError(f"instruments {unknown} have no bars")
    slot_inst = np.array([inst[i] for _, i in slots], dtype=np.int64)
    slot_strat = np.array([strategies.index(s) for s, _ in slots], dtype=np.int64)
    return slots, slot_inst, slot_strat


def signal_flags(
    long_entry: np.ndarray,
    long_exit: np.ndarray | None = None,
    short_entry: np.ndarray | None = None,
    short_exit: np.ndarray | None = None,
) -> np.ndarray:
    """Pack boolean signal arrays into the kernel's bit flags (int64, same shape)."""
    out = np.asarray(long_entry, dtype=np.int64) * core.SIG_LONG_ENTRY
    for arr, bit in (
        (long_exit, core.SIG_LONG_EXIT),
        (short_entry, core.SIG_SHORT_ENTRY),
        (short_exit, core.SIG_SHORT_EXIT),
    ):
        if arr is not None:
            out = out | (np.asarray(arr, dtype=np.int64) * bit)
    return out


_SIGNAL_BITS = (core.SIG_LONG_ENTRY, core.SIG_LONG_EXIT, core.SIG_SHORT_ENTRY, core.SIG_SHORT_EXIT)


def _normalised_signals(signals: pl.DataFrame, bars: pl.DataFrame, sizing: Sizing) -> pl.DataFrame:
    """Signals with every column the engine reads, evaluating polars-expression `size` / `stop_distance` sizing
    against the bars (joined on ts, instrument). Only needed when sizing uses expressions."""
    sig = signals.with_columns(pl.col(TS).cast(TS_DTYPE))
    if STRATEGY not in sig.columns:
        sig = sig.with_columns(pl.lit(DEFAULT_STRATEGY).alias(STRATEGY))
    sig = sig.with_columns(
        [
            (pl.col(c).cast(pl.Boolean).fill_null(False) if c in sig.columns else pl.lit(False)).alias(c)
            for c in SIGNAL_COLUMNS
        ]
    )
    size_expr = sizing.size if isinstance(sizing.size, pl.Expr) else pl.lit(float(sizing.size))
    if "size" not in sig.columns and not isinstance(sizing.size, pl.Expr):
        sig = sig.with_columns(size=pl.lit(float(sizing.size)))
    elif "size" not in sig.columns:
        ctx = sig.join(bars.with_columns(pl.col(TS).cast(TS_DTYPE)), on=[TS, INSTRUMENT], how="left")
        sig = sig.with_columns(size=ctx.with_columns(_size=size_expr.cast(pl.Float64))["_size"])
    if "stop_distance" not in sig.columns:
        if sizing.stop_distance is not None:
            ctx = sig.join(bars.with_columns(pl.col(TS).cast(TS_DTYPE)), on=[TS, INSTRUMENT], how="left")
            sig = sig.with_columns(stop_distance=ctx.with_columns(_sd=sizing.stop_distance.cast(pl.Float64))["_sd"])
        else:
            sig = sig.with_columns(stop_distance=pl.lit(np.nan))
    return sig


def run_signals(
    bars: pl.DataFrame,
    signals: pl.DataFrame,
    config: EngineConfig | None = None,
    *,
    sizing: Sizing | None = None,
    funding: pl.DataFrame | None = None,
    fast: bool | None = None,
    accumulate: Accumulate = False,
    upon_opposite_entry: OppositeEntry = "reversereduce",
    upon_long_conflict: Conflict = "ignore",
    upon_short_conflict: Conflict = "ignore",
    upon_dir_conflict: DirConflict = "ignore",
    sl_stop: float | None = None,
    tp_stop: float | None = None,
    sl_trail: bool = False,
    stop_ignores_signals: bool = True,
) -> BacktestResult:
    """Backtest boolean signals (columns long_entry/long_exit/short_entry/short_exit, any subset; optional
    `strategy`, `size`, `stop_distance` columns override `sizing`; an optional `exit_portion` column in (0, 1] makes
    an exit signal close that fraction of the position, as backtesting.py's `position.close(portion)`: whole units,
    at least one, with `Sizing(whole_units=True)`). Shared cash across all (strategy, instrument)
    slots. Default sizing: 100% of equity per entry. `fast=None` picks the compiled fast path when eligible.

    Signal modes are vectorbt `Portfolio.from_signals`' (same names, values and defaults; see the module docstring):
    `accumulate`, `upon_opposite_entry`, `upon_long_conflict` / `upon_short_conflict` / `upon_dir_conflict`, and
    stops as fractions of the entry price: `sl_stop`, `tp_stop`, `sl_trail` (trailing stop-loss). In fill_at="close"
    a bar whose stop fired ignores its signals, as vectorbt; `stop_ignores_signals=False` trades them at its close,
    as backtesting.py (trade_on_close) does."""
    config = config or EngineConfig()
    rules = signal_rules(accumulate, upon_opposite_entry, upon_long_conflict, upon_short_conflict, upon_dir_conflict)
    stops = _stops(sl_stop, tp_stop, sl_trail)
    sizing = sizing or Sizing(SizeType.EQUITY_PERCENT, 1.0)
    for c in (TS, INSTRUMENT):
        if c not in signals.columns:
            raise ValueError(f"signals: missing column {c!r}")
    if not any(c in signals.columns for c in SIGNAL_COLUMNS):
        raise ValueError(f"signals: needs at least one of {SIGNAL_COLUMNS}")
    grid = _grid(bars, config)
    sd_expr = "stop_distance" not in signals.columns and sizing.stop_distance is not None
    if isinstance(sizing.size, pl.Expr) or sd_expr:
        sig = _normalised_signals(signals, bars, sizing)
    else:
        sig = signals if signals.schema[TS] == TS_DTYPE else signals.with_columns(pl.col(TS).cast(TS_DTYPE))
    n, m = grid.ts.shape[0], sig.height
    strat_col = sig[STRATEGY] if STRATEGY in sig.columns else None
    if (strat_col is None or _is_constant(strat_col)) and _is_constant(sig[INSTRUMENT]):
        # one (strategy, instrument) slot: no unique/sort/join needed
        strat = DEFAULT_STRATEGY if strat_col is None else strat_col[0]
        slots, slot_inst, slot_strat = _slots([(strat, sig[INSTRUMENT][0])], grid)
        sidx: np.ndarray | int = 0
    else:
        if strat_col is None:
            sig = sig.with_columns(pl.lit(DEFAULT_STRATEGY).alias(STRATEGY))
        slot_df = sig.select(STRATEGY, INSTRUMENT).unique().sort(STRATEGY, INSTRUMENT).with_row_index("_slot")
        slots, slot_inst, slot_strat = _slots(list(zip(slot_df[STRATEGY], slot_df[INSTRUMENT], strict=True)), grid)
        sidx = (
            sig.select(STRATEGY, INSTRUMENT)
            .join(slot_df, on=[STRATEGY, INSTRUMENT], how="left", maintain_order="left")["_slot"]
            .cast(pl.Int64)
            .to_numpy()
        )
    ns = len(slots)
    t_sig = sig[TS].to_numpy()
    if m == n and sig[TS].null_count() == 0 and np.array_equal(t_sig.view(np.int64), grid.ts.view(np.int64)):
        idx: np.ndarray | slice = slice(None)  # signals row i is bar i
    else:
        idx = _bar_index(grid, sig[TS], "asof")
        exact = grid.ts[np.clip(idx, 0, n - 1)] == t_sig
        if not bool(np.all(exact & (idx >= 0))):
            bad = sig.filter(pl.Series(~(exact & (idx >= 0))))[TS].head(3).to_list()
            raise ValueError(f"signals: timestamps not on the bar grid, e.g. {bad}")
    packed = np.zeros(m, dtype=np.int64)
    for col, bit in zip(SIGNAL_COLUMNS, _SIGNAL_BITS, strict=True):
        if col in sig.columns:
            s = sig[col]
            if s.dtype != pl.Boolean or s.null_count():
                s = s.cast(pl.Boolean).fill_null(False)
            packed[s.to_numpy()] |= bit
    if isinstance(idx, slice) and ns == 1:
        flags = packed.reshape(n, 1)  # one slot, one signal row per bar: already the flag grid
    else:
        flags = np.zeros((n, ns), dtype=np.int64)
        flags[idx, sidx] = packed
    fund = _funding(grid, funding) if funding is not None and funding.height else None

    eligible = (
        ns == 1
        and not config.dynamic_costs
        and config.participation_rate is None
        and config.latency_bars == 0
        and config.entry_spread == 0.0
        and not sizing.whole_units
        and (fund is None or bool(np.all(np.isnan(fund))))
        and config.risk == RiskLimits.disabled()
        and sizing.size_type in (SizeType.SHARES, SizeType.CONTRACTS, SizeType.NOTIONAL)
        and "size" not in signals.columns
        and "exit_portion" not in signals.columns
        and not isinstance(sizing.size, pl.Expr)
        # a signal stop fills without slippage at the maker fee (the fast path has one fee)
        and ((math.isnan(stops[0]) and math.isnan(stops[1])) or config.maker_fee == config.taker_fee)
    )
    if fast and not eligible:
        raise ValueError("fast=True but the case needs the full simulator (one slot, fixed size, no risk/costs)")
    if fast or (fast is None and eligible):
        fixed = sizing.size if isinstance(sizing.size, float | int) else math.nan
        return _run_fast(grid, slots, flags, float(fixed), sizing.size_type, config, rules, stops, stop_ignores_signals)
    # per-bar size / stop distance grids are only needed by the full simulator
    size = np.full((n, ns), np.nan)
    if "size" in sig.columns:
        size[idx, sidx] = sig["size"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    else:
        size[idx, sidx] = float(sizing.size)  # type: ignore[arg-type]
    stop_dist = np.full((n, ns), np.nan)
    if "stop_distance" in sig.columns:
        stop_dist[idx, sidx] = sig["stop_distance"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    if fund is None:
        fund = np.full((n, len(grid.instruments)), np.nan)
    params = config.params(sizing.size_type, rules, stops, sizing.whole_units, stop_ignores_signals)
    portion = np.full((n, ns), np.nan)
    if "exit_portion" in sig.columns:
        part_col = sig["exit_portion"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        if bool(np.any(~((part_col > 0) & (part_col <= 1)) & ~np.isnan(part_col))):
            raise ValueError("signals: exit_portion must be in (0, 1] (or null for the whole position)")
        portion[idx, sidx] = part_col
    signal_inputs = core.SignalInputs(flags, size, stop_dist, portion)
    return _simulate(grid, slots, slot_inst, slot_strat, signal_inputs, core.empty_orders(0), fund, params, config, [])


def run_orders(
    bars: pl.DataFrame,
    orders: pl.DataFrame,
    config: EngineConfig | None = None,
    *,
    funding: pl.DataFrame | None = None,
) -> BacktestResult:
    """Backtest explicit orders (ORDER_INPUT_SCHEMA columns; ts = bar whose close the order is submitted at)."""
    config = config or EngineConfig()
    for c in (TS, INSTRUMENT, "side"):
        if c not in orders.columns:
            raise ValueError(f"orders: missing column {c!r}")
    grid = _grid(bars, config)
    o = orders.with_columns(pl.col(TS).cast(TS_DTYPE))
    defaults: dict[str, object] = {
        ORDER_ID: None,
        STRATEGY: DEFAULT_STRATEGY,
        "action": Action.ENTRY.value,
        "order_type": OrderType.MARKET.value,
        "size_type": SizeType.SHARES.value,
        "size": float("nan"),
        "limit_price": float("nan"),
        "stop_price": float("nan"),
        "stop_distance": float("nan"),
        "time_in_force_bars": -1,
        "ref_order_id": -1,
    }
    for c, v in defaults.items():
        if c not in o.columns:
            o = o.with_columns(pl.lit(v).alias(c))
        elif v is not None:
            o = o.with_columns(pl.col(c).fill_null(v))
    if o[ORDER_ID].null_count() == o.height:
        o = o.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(ORDER_ID))
    if o[ORDER_ID].is_duplicated().any():
        raise ValueError("orders: order_id must be unique")
    o = o.with_row_index("_row").sort(TS, "_row")
    idx = _bar_index(grid, o[TS], "asof")
    if bool(np.any(idx < 0)):
        raise ValueError("orders: some orders are submitted before the first bar")
    pairs = list(zip(o[STRATEGY].to_list(), o[INSTRUMENT].to_list(), strict=True))
    slots, slot_inst, slot_strat = _slots(pairs, grid)
    slot_of = {p: k for k, p in enumerate(slots)}
    m = o.height
    arr = core.empty_orders(m)

    def _codes(col: str, enum: type[Side] | type[Action] | type[OrderType] | type[SizeType]) -> np.ndarray:
        vals = [str(v).upper() if v is not None else None for v in o[col].to_list()]
        names = {e.value: e.code for e in enum}
        bad = sorted({str(v) for v in vals if v not in names})
        if bad:
            raise ValueError(f"orders: column {col!r} has unknown values {bad}; expected {sorted(names)}")
        return np.array([names[str(v)] for v in vals], dtype=np.int64)

    arr["bar"] = idx
    arr["slot"] = [slot_of[p] for p in pairs]
    arr["side"] = _codes("side", Side)
    arr["action"] = _codes("action", Action)
    arr["order_type"] = _codes("order_type", OrderType)
    arr["size_type"] = _codes("size_type", SizeType)
    for col in ("size", "limit_price", "stop_price", "stop_distance"):
        arr[col] = o[col].cast(pl.Float64).fill_null(np.nan).to_numpy()
    arr["tif"] = o["time_in_force_bars"].cast(pl.Int64).fill_null(-1).to_numpy()
    ids = o[ORDER_ID].cast(pl.Int64).to_list()
    pos_of = {oid: k for k, oid in enumerate(ids)}
    arr["ref"] = [
        pos_of.get(r, -1) if r is not None and r >= 0 else -1 for r in o["ref_order_id"].cast(pl.Int64).to_list()
    ]
    arr["input_id"] = ids
    n, ns = grid.ts.shape[0], len(slots)
    nan2 = np.full((n, ns), np.nan)
    no_signals = core.SignalInputs(np.zeros((n, ns), dtype=np.int64), nan2, nan2, nan2)
    params = config.params(SizeType.SHARES)
    return _simulate(grid, slots, slot_inst, slot_strat, no_signals, arr, _funding(grid, funding), params, config, ids)


def _simulate(
    grid: _Grid,
    slots: list[tuple[str, str]],
    slot_inst: np.ndarray,
    slot_strat: np.ndarray,
    signals: core.SignalInputs,
    orders_in: np.ndarray,
    fund: np.ndarray,
    params: core.Params,
    config: EngineConfig,
    input_ids: list[int],
) -> BacktestResult:
    a = grid.arrays
    new_day, next_day = _days(grid)
    market = core.Market(
        open=a[OPEN],
        high=a[HIGH],
        low=a[LOW],
        close=a[CLOSE],
        volume=a[VOLUME],
        half_spread=a[HALF_SPREAD],
        sigma=a[SIGMA],
        adv=a[ADV_NOTIONAL],
        funding=fund,
        new_day=new_day,
        next_day=next_day,
    )
    r = core.simulate_nb(market, core.Slots(slot_inst, slot_strat), signals, orders_in, params)
    # order ids: user ids for input orders, then fresh ids after the largest one for generated orders
    next_id = (max(input_ids) + 1) if input_ids else 0
    oid = np.empty(r.orders.shape[0], dtype=np.int64)
    n_in = orders_in.shape[0]
    oid[:n_in] = input_ids
    oid[n_in:] = np.arange(next_id, next_id + r.orders.shape[0] - n_in)
    return _assemble(grid, slots, r, oid, config, fast=False)


# BacktestResult.funding_payments: one row per (bar, slot) where a held position paid or received funding
FUNDING_PAYMENTS_SCHEMA = pl.Schema(
    {
        TS: TS_DTYPE,
        INSTRUMENT: pl.String(),
        STRATEGY: pl.String(),
        FUNDING_RATE: pl.Float64(),
        "mark_price": pl.Float64(),
        "payment": pl.Float64(),
    }
)


def _bar_us(grid: _Grid, idx: np.ndarray) -> np.ndarray:
    """Epoch microseconds of the bars at (float) indices, clipped to the grid."""
    k = np.clip(np.asarray(idx).astype(np.int64), 0, grid.ts.shape[0] - 1)
    return grid.ts.view(np.int64)[k]


def _enum_table(enum: type[_Coded]) -> list[str]:
    return [m.value for m in enum]


def _code_table(names: dict[int, str]) -> list[str | None]:
    return [names.get(k) for k in range(max(names) + 1)]


_REASON_TABLE = _code_table(REASONS)
_EVENT_TABLE = _code_table(EVENT_KINDS)


@lru_cache(maxsize=256)
def _name_table(table: tuple[str | None, ...]) -> pl.Expr:
    """Literal string table with a trailing null slot for out-of-table codes."""
    return pl.lit(pl.Series([*table, None], dtype=pl.String))


class _FrameBuilder:
    """A result frame built in one polars `select` over a frame of raw numpy columns: timestamps travel as int64
    microseconds (cast to TS_DTYPE), names as integer codes gathered from a small string table (a literal when
    every row has the same code), NaN -> null by expression. One query per frame instead of a Python loop per row
    or one polars call per column."""

    def __init__(self) -> None:
        self.raw: dict[str, np.ndarray | pl.Series] = {}
        self.exprs: list[pl.Expr] = []

    def values(self, name: str, arr: np.ndarray | pl.Series, nan_to_null: bool = False) -> None:
        self.raw[name] = arr
        self.exprs.append(pl.col(name).fill_nan(None) if nan_to_null else pl.col(name))

    def ts(self, name: str, grid: _Grid, idx: np.ndarray) -> None:
        self.raw[name] = _bar_us(grid, idx)
        self.exprs.append(pl.col(name).cast(TS_DTYPE))

    def names(self, name: str, table: list[str] | list[str | None], codes: np.ndarray) -> None:
        """String column from float/int codes into `table`; codes outside it (-1 = none, NaN) give null."""
        c = np.asarray(codes)
        if c.shape[0] and c.min() == c.max():  # one code for every row (NaN never compares equal)
            k0 = int(c[0])
            value = table[k0] if 0 <= k0 < len(table) else None
            self.exprs.append(pl.lit(value, dtype=pl.String).alias(name))
            return
        c = c.astype(np.float64)
        k = np.where(np.isfinite(c), c, -1.0).astype(np.int64)
        self.raw[name] = np.where((k >= 0) & (k < len(table)), k, len(table))
        self.exprs.append(_name_table(tuple(table)).gather(pl.col(name)).alias(name))

    def row_index(self, name: str) -> None:
        self.exprs.append(pl.int_range(pl.len(), dtype=pl.Int64).alias(name))

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.raw).select(self.exprs)


def _nullable_ids(oid: np.ndarray, k: np.ndarray) -> pl.Series:
    """`oid[k]` as Int64, null where k < 0."""
    out = pl.Series(oid[np.clip(k, 0, None)] if oid.shape[0] else np.zeros(k.shape[0], np.int64), dtype=pl.Int64)
    return out.scatter(np.flatnonzero(k < 0), None) if bool(np.any(k < 0)) else out


def _orders_frame(grid: _Grid, slots: list[tuple[str, str]], orders: np.ndarray, oid: np.ndarray) -> pl.DataFrame:
    fb = _FrameBuilder()
    fb.values(ORDER_ID, oid)
    fb.ts(TS, grid, orders["bar"])
    fb.names(INSTRUMENT, [i for _, i in slots], orders["slot"])
    fb.names(STRATEGY, [s for s, _ in slots], orders["slot"])
    fb.names("side", _enum_table(Side), orders["side"])
    fb.names("action", _enum_table(Action), orders["action"])
    fb.names("order_type", _enum_table(OrderType), orders["order_type"])
    fb.names("size_type", _enum_table(SizeType), orders["size_type"])
    fb.values("size", np.ascontiguousarray(orders["size"]), nan_to_null=True)
    fb.values("limit_price", np.ascontiguousarray(orders["limit_price"]), nan_to_null=True)
    fb.values("stop_price", np.ascontiguousarray(orders["stop_price"]), nan_to_null=True)
    fb.values("requested_units", np.ascontiguousarray(orders["requested"]), nan_to_null=True)
    fb.values("filled_units", np.nan_to_num(orders["filled"]))
    fb.values("avg_fill_price", np.ascontiguousarray(orders["avg_price"]), nan_to_null=True)
    fb.names("status", _enum_table(OrderStatus), orders["status"])
    fb.names("reason", _REASON_TABLE, orders["reason"])
    fb.ts("last_update_ts", grid, orders["last_bar"])
    return fb.frame()


def _fills_frame(grid: _Grid, slots: list[tuple[str, str]], fills: np.ndarray, oid: np.ndarray) -> pl.DataFrame:
    ford = fills["order"]
    fb = _FrameBuilder()
    fb.row_index("fill_id")
    fb.values(ORDER_ID, oid[ford] if oid.shape[0] else np.ascontiguousarray(ford))
    fb.ts(TS, grid, fills["bar"])
    fb.names(INSTRUMENT, [i for _, i in slots], fills["slot"])
    fb.names(STRATEGY, [s for s, _ in slots], fills["slot"])
    fb.names("side", _enum_table(Side), fills["side"])
    fb.values("price", np.ascontiguousarray(fills["price"]))
    fb.values("size", np.ascontiguousarray(fills["size"]))
    fb.values("fee", np.ascontiguousarray(fills["fee"]))
    fb.values("slippage_cost", np.ascontiguousarray(fills["slippage_cost"]))
    fb.values("expected_slippage_cost", np.ascontiguousarray(fills["expected_slippage_cost"]))
    fb.names("liquidity", [Liquidity.TAKER.value, Liquidity.MAKER.value], fills["maker"])
    return fb.frame()


def _events_frame(grid: _Grid, slots: list[tuple[str, str]], events: np.ndarray, oid: np.ndarray) -> pl.DataFrame:
    if events.shape[0] == 0:
        return pl.DataFrame(schema=RISK_EVENTS_SCHEMA)
    fb = _FrameBuilder()
    fb.ts(TS, grid, events["bar"])
    fb.values(ORDER_ID, _nullable_ids(oid, events["order"]))
    fb.names(INSTRUMENT, grid.instruments, events["instrument"])
    fb.names(STRATEGY, [s for s, _ in slots], events["slot"])
    fb.names("event", _EVENT_TABLE, events["kind"])
    fb.names("reason", _REASON_TABLE, events["reason"])
    fb.values("requested_units", np.ascontiguousarray(events["requested"]))
    fb.values("allowed_units", np.ascontiguousarray(events["allowed"]))
    return fb.frame()


def _funding_frame(grid: _Grid, slots: list[tuple[str, str]], funds: np.ndarray) -> pl.DataFrame:
    if funds.shape[0] == 0:
        return pl.DataFrame(schema=FUNDING_PAYMENTS_SCHEMA)
    fb = _FrameBuilder()
    fb.ts(TS, grid, funds["bar"])
    fb.names(INSTRUMENT, [i for _, i in slots], funds["slot"])
    fb.names(STRATEGY, [s for s, _ in slots], funds["slot"])
    fb.values(FUNDING_RATE, np.ascontiguousarray(funds["rate"]))
    fb.values("mark_price", np.ascontiguousarray(funds["mark_price"]))
    fb.values("payment", np.ascontiguousarray(funds["payment"]))
    return fb.frame()


def _assemble(
    grid: _Grid,
    slots: list[tuple[str, str]],
    r: core.SimResult,
    oid: np.ndarray,
    config: EngineConfig,
    fast: bool,
) -> BacktestResult:
    """Result frames from the kernel's record arrays."""
    strat_of = [s for s, _ in slots]
    inst_of = [i for _, i in slots]
    state = r.state
    eq_dd = core.equity_drawdown_nb(state)
    equity_df = pl.DataFrame(
        {
            TS: grid.ts_series,
            "cash": state.cash,
            "positions_value": state.positions_value,
            "equity": eq_dd[0],
            "gross_exposure": state.gross_exposure,
            "fees_cum": state.fees_cum,
            "funding_cum": state.funding_cum,
            "drawdown": eq_dd[1],
        },
        schema=EQUITY_SCHEMA,
    )
    last_close = _last_valid(grid.arrays[CLOSE])
    positions_df = pl.DataFrame(
        {
            INSTRUMENT: inst_of,
            STRATEGY: strat_of,
            "size": r.position,
            "mark_price": [last_close[grid.instruments.index(i)] for i in inst_of],
        }
    )
    return BacktestResult(
        orders=_orders_frame(grid, slots, r.orders, oid),
        fills=_fills_frame(grid, slots, r.fills, oid),
        trades=trades_frame(grid, slots, r.trades),
        equity=equity_df,
        risk_events=_events_frame(grid, slots, r.events, oid),
        funding_payments=_funding_frame(grid, slots, r.funding),
        positions=positions_df,
        init_cash=config.init_cash,
        used_fast_path=fast,
    )


def _last_valid(arr: np.ndarray) -> np.ndarray:
    """Last finite value of each column (NaN if none)."""
    n = arr.shape[0]
    if n == 0:
        return np.full(arr.shape[1], np.nan)
    if bool(np.all(np.isfinite(arr[-1]))):
        return arr[-1].astype(np.float64)  # usual case: the last bar is valid everywhere
    ok = np.isfinite(arr)
    last = n - 1 - np.argmax(ok[::-1], axis=0)
    out = arr[last, np.arange(arr.shape[1])]
    return np.where(ok.any(axis=0), out, np.nan)


def trades_frame(grid: _Grid, slots: list[tuple[str, str]], trades: np.ndarray) -> pl.DataFrame:
    """TRADES_SCHEMA frame from the kernel's trade records (TRADE_DT)."""
    short = trades["short"]
    entry_px = np.ascontiguousarray(trades["entry_price"])
    exit_px = np.ascontiguousarray(trades["exit_price"])
    size = np.ascontiguousarray(trades["size"])
    fees = np.ascontiguousarray(trades["fees"])
    funding = np.ascontiguousarray(trades["funding"])
    direction = np.where(short, -1.0, 1.0)
    gross = direction * (exit_px - entry_px) * size
    pnl = gross - fees - funding
    notional = entry_px * size
    fb = _FrameBuilder()
    fb.row_index("trade_id")
    fb.names(INSTRUMENT, [i for _, i in slots], trades["slot"])
    fb.names(STRATEGY, [s for s, _ in slots], trades["slot"])
    fb.names("direction", ["LONG", "SHORT"], short)
    fb.ts("entry_ts", grid, trades["entry_bar"])
    fb.ts("exit_ts", grid, trades["exit_bar"])
    fb.values("entry_bar", np.ascontiguousarray(trades["entry_bar"]))
    fb.values("exit_bar", np.ascontiguousarray(trades["exit_bar"]))
    fb.values("entry_price", entry_px)
    fb.values("exit_price", exit_px)
    fb.values("size", size)
    fb.values("gross_pnl", gross)
    fb.values("fees", fees)
    fb.values("funding", funding)
    fb.values("pnl", pnl)
    fb.values("return", np.divide(pnl, notional, out=np.full_like(pnl, np.nan), where=notional != 0))
    fb.names("status", ["CLOSED", "OPEN"], trades["is_open"])
    return fb.frame()


@dataclass(frozen=True)
class BatchResult:
    """Output of the fast path: fill (FILL_DT) and trade (TRADE_DT) records, their `slot` the column, and the
    final state per column."""

    fills: np.ndarray
    trades: np.ndarray
    final_cash: np.ndarray
    final_position: np.ndarray
    final_equity: np.ndarray


def run_signals_batch(
    close: np.ndarray,
    flags: np.ndarray,
    *,
    open_: np.ndarray | None = None,
    size: float | np.ndarray = np.inf,
    notional: bool = True,
    fees: float = 0.0,
    fixed_fees: float = 0.0,
    slippage: float = 0.0,
    init_cash: float = 100_000.0,
    fill_at: Literal["next_open", "close"] = "close",
    allow_short: bool = True,
    wait_for_price: bool = False,
    rules: core.SignalRules | None = None,
    high: np.ndarray | None = None,
    low: np.ndarray | None = None,
    sl_stop: float | None = None,
    tp_stop: float | None = None,
    sl_trail: bool = False,
    stop_ignores_signals: bool = True,
) -> BatchResult:
    """Compiled fast path: each column of `flags` (see `signal_flags`) is an independent single-instrument backtest
    on the matching column of `close` (broadcast if 1 column). Market orders only, no partial fills, no risk layer.
    `size` is quote notional when `notional` (inf = all cash) else units. A signal whose fill price is NaN is dropped
    (vectorbt) unless `wait_for_price` (see `EngineConfig.signals_wait_for_price`). `rules` (`signal_rules`) are
    vectorbt's accumulation / opposite-entry / conflict modes; `sl_stop` / `tp_stop` / `sl_trail` its stops (they
    need `open_`, `high` and `low`, and fill without slippage at the stop price or the open gapped through it)."""
    close = np.asarray(close, dtype=np.float64)
    if close.ndim == 1:
        close = close[:, None]
    flags = np.asarray(flags, dtype=np.int64)
    if flags.ndim == 1:
        flags = flags[:, None]
    m = flags.shape[1]
    if close.shape[0] != flags.shape[0]:
        raise ValueError("run_signals_batch: close and flags need the same number of rows")
    price = close if fill_at == "close" else np.asarray(open_ if open_ is not None else close, dtype=np.float64)
    if price.ndim == 1:
        price = price[:, None]
    if price.shape[1] == 1 and m > 1:
        price = np.broadcast_to(price, (price.shape[0], m))
    sizes = np.broadcast_to(np.asarray(size, dtype=np.float64), (m,)).copy()
    fp = core.FastParams(
        notional=bool(notional),
        fees=float(fees),
        fixed_fees=float(fixed_fees),
        slippage=float(slippage),
        init_cash=float(init_cash),
        next_bar=fill_at == "next_open",
        allow_short=bool(allow_short),
        wait=bool(wait_for_price),
        rules=rules or core.SignalRules(),
    )
    sl, tp, trail = _stops(sl_stop, tp_stop, sl_trail)
    if math.isnan(sl) and math.isnan(tp):
        none = np.full((1, 1), np.nan)
        stop_in = core.StopInputs(none, none, none, none, sl, tp, trail, stop_ignores_signals)
    else:
        if open_ is None or high is None or low is None:
            raise ValueError("run_signals_batch: sl_stop / tp_stop need open_, high and low")

        def _cols(a: np.ndarray) -> np.ndarray:
            a = np.asarray(a, dtype=np.float64)
            a = a[:, None] if a.ndim == 1 else a
            return np.ascontiguousarray(np.broadcast_to(a, (a.shape[0], m)))

        stop_in = core.StopInputs(
            _cols(open_), _cols(high), _cols(low), _cols(close), sl, tp, trail, stop_ignores_signals
        )
    fills, trades, cash, pos = core.fast_signals_nb(
        np.ascontiguousarray(price), np.ascontiguousarray(flags), sizes, fp, stop_in
    )
    closes = close if close.shape[1] == m else np.broadcast_to(close, (close.shape[0], m))
    last = _last_valid(np.asarray(closes))
    still_open = trades["is_open"]
    trades["exit_price"][still_open] = last[trades["slot"][still_open]]
    final_eq = cash + np.where(pos != 0, pos * last, 0.0)
    return BatchResult(fills, trades, cash, pos, final_eq)


def _run_fast(
    grid: _Grid,
    slots: list[tuple[str, str]],
    flags: np.ndarray,
    size: float,
    size_type: SizeType,
    config: EngineConfig,
    rules: core.SignalRules,
    stops: tuple[float, float, bool],
    stop_ignores_signals: bool,
) -> BacktestResult:
    a = grid.arrays
    with_stops = not (math.isnan(stops[0]) and math.isnan(stops[1]))
    res = run_signals_batch(
        a[CLOSE],
        flags,
        open_=a[OPEN],
        size=size,
        notional=size_type == SizeType.NOTIONAL,
        fees=config.taker_fee,
        fixed_fees=config.fixed_fee,
        slippage=config.slippage,
        init_cash=config.init_cash,
        fill_at=config.fill_at,
        allow_short=config.allow_short,
        wait_for_price=config.signals_wait_for_price,
        rules=rules,
        high=a[HIGH] if with_stops else None,
        low=a[LOW] if with_stops else None,
        sl_stop=None if math.isnan(stops[0]) else stops[0],
        tp_stop=None if math.isnan(stops[1]) else stops[1],
        sl_trail=stops[2],
        stop_ignores_signals=stop_ignores_signals,
    )
    n = grid.ts.shape[0]
    fills = res.fills
    nfl = fills.shape[0]
    # one filled market order per fill (a signal stop's: a STOP exit submitted and filled at its bar)
    is_stop = fills["order"] == core.STOP_EXIT_ID
    orders = core.empty_orders(nfl)
    orders["bar"] = fills["bar"] - np.where(is_stop, 0, 1 if config.fill_at == "next_open" else 0)
    orders["slot"] = 0
    orders["side"] = fills["side"]
    orders["action"] = np.where(is_stop, Action.EXIT.code, Action.ENTRY.code)
    orders["order_type"] = np.where(is_stop, OrderType.STOP.code, OrderType.MARKET.code)
    orders["size_type"] = size_type.code
    orders["size"] = size
    orders["requested"] = fills["size"]
    orders["filled"] = fills["size"]
    orders["avg_price"] = fills["price"]
    orders["status"] = OrderStatus.FILLED.code
    orders["reason"] = core.R_NONE
    orders["last_bar"] = fills["bar"]
    fills["order"] = np.arange(nfl)
    fills["slot"] = 0
    trades = res.trades
    trades["slot"] = 0
    state = core.fills_state_nb(n, fills, np.ascontiguousarray(a[CLOSE][:, 0]), config.init_cash)
    r = core.SimResult(
        orders,
        fills,
        trades,
        np.empty(0, dtype=core.EVENT_DT),
        np.empty(0, dtype=core.FUNDING_DT),
        state,
        res.final_position,
    )
    return _assemble(grid, slots, r, np.arange(nfl, dtype=np.int64), config, fast=True)
