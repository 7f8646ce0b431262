"""Offline evaluation and tuning: splits, metrics, the one fit-context builder and hold-out carve
(:mod:`.context`), the evaluation job (:mod:`.evaluate`), parameter and blend-weight search
(:mod:`.search`, :mod:`.blend_weights`, :mod:`.tuning`), trials and tuned configuration (:mod:`.trials`),
MLflow tracking (:mod:`.tracking`)."""
