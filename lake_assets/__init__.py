"""qlake: a quantitative-research data lake built as one Dagster asset graph."""

import warnings

# Dagster marks BackfillPolicy (which single-run history loads rely on) as beta; say it once in the docs, not per asset.
warnings.filterwarnings("ignore", message=r".*backfill_policy.*", category=Warning)
