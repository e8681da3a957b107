"""The data stage: WARC and sample sources, reading, extraction, language ID, filters, dedup, PII."""
