"""Full-text search: documents built from domain events, two backends, live matching.

- `documents`: the per-kind table (which fields a kind's search document takes, with what
  weight, and what its hits show) and the conversion of outbox events into documents.
- `backend`: the interface both backends implement, and the choice between them.
- `postgres` (the embedded default) and `elastic` (when CINEMA_ELASTICSEARCH_URL is set).
- `reindex`: a snapshot of the catalog into a fresh index, swapped in without downtime.
- `live`: one dispatcher per process matching live queries against what was just indexed.
"""
