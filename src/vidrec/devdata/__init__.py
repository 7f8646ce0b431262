"""Data for development, demos and benchmarks: the synthetic sample generator (:mod:`.sample`) and the
MovieLens adapters (:mod:`.movielens`). Never used by the nightly on real data."""
