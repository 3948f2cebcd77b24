"""When assets run by themselves: the one automation condition of the lake's partitioned assets."""

from __future__ import annotations

import dagster as dg

__all__ = ["AUTOMATION", "WAITS_FOR_CHECKS"]

WAITS_FOR_CHECKS = ~dg.AutomationCondition.any_deps_match(
    dg.AutomationCondition.any_checks_match(dg.AutomationCondition.check_failed(), blocking_only=True)
).with_label("no_dep_partition_failed_a_blocking_check")
# Eager over every partition (static partitions: any month, any instrument, not just the latest window), and never
# from a dependency partition whose blocking check failed. Dagster's all_deps_blocking_checks_passed() is true when
# ANY mapped upstream partition passed, which is wrong for many-to-one mappings (a month reads its predecessor too).
AUTOMATION = dg.AutomationCondition.eager() & WAITS_FOR_CHECKS
