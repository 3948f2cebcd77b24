"""The paper-trading loop: a strategy stepped bar by bar over the lake's bars, through the gate and risk, executed by
the backtests' engine, audited (spec/paper.yaml)."""
