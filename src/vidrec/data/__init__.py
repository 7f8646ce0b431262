"""The data layers: raw input, its contract and ingest (bronze), the user-item matrix (silver), table I/O.

- :mod:`.raw`: discovering and reading raw files (JSON lines, CSV, Parquet) as string-typed records;
- :mod:`.ingest`: the input contract checked record by record, quarantine with reasons, bronze;
- :mod:`.matrix`: stable id indexes and one row per (user, item) with its implicit confidence;
- :mod:`.schemas`: the Spark schemas of the tables; :mod:`.tables`: where each table lives and how it
  is written (one Delta commit per write);
- :mod:`.contracts`: what every candidate list and gold table promises, checked before gold writes.
"""
