-- The paper-trading session at a glance: per session and instrument the latest position, the latest equity and
-- today's PnL (UTC day of the latest bar), and the rejections by kind (gate, risk, data) so far.
CREATE OR REPLACE VIEW paper_overview AS
WITH last_bar AS (SELECT session, max(ts) AS ts FROM paper_pnl GROUP BY session),
pos AS (
    SELECT p.session, p.instrument, p.position
    FROM paper_positions p JOIN last_bar l ON p.session = l.session AND p.ts = l.ts
),
pnl AS (
    SELECT p.session, p.ts, p.equity, p.day_pnl
    FROM paper_pnl p JOIN last_bar l ON p.session = l.session AND p.ts = l.ts
),
rej AS (
    SELECT session, instrument,
        count(*) FILTER (WHERE rejected_by = 'gate') AS gate_rejections,
        count(*) FILTER (WHERE rejected_by = 'risk') AS risk_rejections,
        count(*) FILTER (WHERE rejected_by = 'data') AS data_rejections,
        count(*) FILTER (WHERE decision IN ('long', 'short')) AS entries
    FROM paper_signals GROUP BY session, instrument
)
SELECT pos.session, pos.instrument, pnl.ts AS latest_bar, pos.position, pnl.equity, pnl.day_pnl AS today_pnl,
    rej.entries, rej.gate_rejections, rej.risk_rejections, rej.data_rejections
FROM pos JOIN pnl USING (session) LEFT JOIN rej USING (session, instrument)
ORDER BY pos.session, pos.instrument;
COMMENT ON COLUMN paper_overview.latest_bar IS 'the last bar the session processed [UTC timestamp]';
COMMENT ON COLUMN paper_overview.today_pnl IS 'equity - the first equity of the latest bar''s UTC day [quote currency]';
COMMENT ON COLUMN paper_overview.entries IS 'entries taken so far [count]';
COMMENT ON COLUMN paper_overview.gate_rejections IS 'entries the gate rejected [count]';
COMMENT ON COLUMN paper_overview.risk_rejections IS 'entries risk rejected [count]';
COMMENT ON COLUMN paper_overview.data_rejections IS 'entries blocked by data checks [count]';
