"""Log intelligence: the audit chain, patterns, detectors, redaction at ingest, export."""
