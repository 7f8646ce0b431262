"""Candidate generators: one module per model, all behind one protocol (:mod:`.base`).

:mod:`.registry` is the one place that lists them. Shared pieces: :mod:`.topn` (top-N from factors,
with the seen items masked) and :mod:`.sparse`. The deep models live in :mod:`.deep` (Spark features
-> Parquet shards -> PyTorch DDP), with one file per network in :mod:`.deep.networks`.
"""
