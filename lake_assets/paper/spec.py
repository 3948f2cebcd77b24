"""spec/paper.yaml: the paper-trading session (strategy, instruments, risk, sizing)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from lake_assets.settings import spec_dir
from lake_assets.specs import StrictModel, load_spec_file

_ID = r"^[A-Z0-9][A-Z0-9._-]{0,31}$"


class PaperSizing(StrictModel):
    kind: Literal["strategy", "fixed_fraction", "vol_target", "kelly"] = "strategy"
    fraction: float = Field(default=0.1, gt=0, le=1)
    target_vol: float = Field(default=0.002, gt=0)
    kelly_win_rate: float = Field(default=0.52, gt=0, lt=1)
    kelly_win_loss: float = Field(default=1.1, gt=0)
    kelly_cap: float = Field(default=0.25, gt=0, le=1)


class PaperRisk(StrictModel):
    max_leverage: float | None = Field(default=None, gt=0)
    max_instrument_exposure: float | None = Field(default=None, gt=0)
    daily_loss_cap: float | None = Field(default=None, gt=0, lt=1)
    cooldown_bars_after_loss: int = Field(default=0, ge=0, le=100_000)
    max_open_positions: int | None = Field(default=None, ge=1)
    reduce_only_bars_after_error: int = Field(default=0, ge=0, le=100_000)
    atr_stop_multiple: float | None = Field(default=None, gt=0)
    sizing: PaperSizing = PaperSizing()


class PaperSpec(StrictModel):
    session: str = Field(pattern=r"^[a-z0-9][a-z0-9_]{0,63}$")
    strategy: str = Field(pattern=r"^[a-z0-9][a-z0-9_]{0,63}$")
    profile: str | None = None
    instruments: tuple[Annotated[str, Field(pattern=_ID)], ...] = Field(min_length=1, max_length=64)
    replay_days: int = Field(default=7, ge=1, le=366)
    feature_warmup_bars: int = Field(default=1200, ge=1, le=100_000)
    decision_window_bars: int = Field(default=300, ge=1, le=100_000)  # bars before a new bar its rules may look at
    max_stale_minutes: float = Field(default=30.0, gt=0)
    block_entries_after_gap: bool = True  # the bar after a gap (or a missing bar) takes no entry
    risk: PaperRisk = PaperRisk()


def load_paper_spec(path: Path | None = None) -> PaperSpec:
    """Read and validate spec/paper.yaml; a problem is a SpecError naming file, key and problem."""
    return load_spec_file(PaperSpec, path or spec_dir() / "paper.yaml", "`session`, `strategy`, `instruments`")
