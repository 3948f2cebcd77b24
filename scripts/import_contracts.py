"""A custom import-linter contract: every module of a package except the allowed ones is free of some packages,
directly and through any chain of imports. (The stock `forbidden` contract cannot say "all modules but these".)

    [importlinter:contract:...]
    type = compute_free            # contract_types = compute_free: scripts.import_contracts.ComputeFreeOfContract
    source_package = lake_assets
    allowed = lake_assets.*.assets  lake_assets.asset_metadata ...     (module expressions, * and ** wildcards)
    forbidden = dagster  resources ...                         (packages)
"""

from __future__ import annotations

from typing import Any

from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck
from importlinter.domain.helpers import module_expressions_to_modules


class ComputeFreeOfContract(Contract):
    type_name = "compute_free"

    source_package = fields.StringField()
    allowed = fields.SetField(subfield=fields.ModuleExpressionField())
    forbidden = fields.SetField(subfield=fields.StringField())

    def check(self, graph: Any, verbose: bool) -> ContractCheck:
        allowed = {m.name for m in module_expressions_to_modules(graph, self.allowed)}  # type: ignore[arg-type]
        package = str(self.source_package)
        sources = sorted(m for m in graph.find_descendants(package) | {package} if m not in allowed)
        forbidden_roots = [str(f) for f in self.forbidden]  # type: ignore[attr-defined]
        targets = sorted(m for m in graph.modules if any(m == f or m.startswith(f + ".") for f in forbidden_roots))
        broken = []
        for source in sources:
            for target in targets:
                chain = graph.find_shortest_chain(importer=source, imported=target)
                if chain:
                    broken.append(chain)
                    break  # one chain per module is enough to fix it
        return ContractCheck(kept=not broken, metadata={"chains": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for chain in check.metadata["chains"]:
            output.print_error(" -> ".join(chain))
            output.new_line()
