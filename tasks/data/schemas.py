"""The data stage's Parquet tables: documents, staged candidates, removals and errors."""

from __future__ import annotations

import pyarrow as pa

DOCUMENT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("url", pa.string()),
        ("text", pa.string()),
        ("crawl_date", pa.string()),
        ("language", pa.string()),
        ("language_score", pa.float32()),
        ("source_file", pa.string()),
        ("record_index", pa.int64()),
    ]
)
# A document that passed every per-document step, with what the global dedup step reads.
CANDIDATE_SCHEMA = DOCUMENT_SCHEMA.append(pa.field("dedup_key", pa.string())).append(
    pa.field("minhash_bands", pa.list_(pa.uint64()))
)
REMOVED_SCHEMA = DOCUMENT_SCHEMA.append(pa.field("filter", pa.string())).append(pa.field("reason", pa.string())).append(
    pa.field("duplicate_of", pa.string())
)
# A record the reader skipped, or a document a step failed on.
ERROR_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("url", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("source_file", pa.string()),
        ("record_index", pa.int64()),
    ]
)
