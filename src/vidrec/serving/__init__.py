"""What a product serves: the hybrid blend of the generators' lists (:mod:`.hybrid`), fitting a set of
algorithms for it (:mod:`.candidates`), and the gold rows of the served tables (:mod:`.gold`)."""
