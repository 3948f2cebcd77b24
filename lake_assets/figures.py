"""matplotlib Figures rendered to PNG bytes for asset metadata: no pyplot, no display, no global figure registry.

matplotlib is imported when the first figure is drawn, not when a layer's module is imported (~0.6 s off the start
of every process that never plots: the CLI, workers, Dagster run subprocesses of other assets).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["new_figure", "png_bytes"]


def new_figure(**kwargs: Any) -> Figure:
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def png_bytes(fig: Figure, *, tight: bool = True) -> bytes:
    """The figure as PNG (after `tight_layout` unless `tight=False`)."""
    if tight:
        fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
