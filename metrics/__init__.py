"""Pure computation: audit spec, metrics over counts, intervals, findings, snapshot. No I/O here."""
