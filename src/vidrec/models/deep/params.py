"""The deep models' parameters: the typed ``deep:`` section of the configuration as training dictionaries.

``conf/base.yaml`` holds every default. A model's parameters are the shared ``deep.train`` section,
then the model's own section (which may override ``batch_size``, ``max_epochs`` and ``lr``; ``gru``
also ``patience``, ``text`` also ``warm_epochs``), as one plain dictionary: that is what
``spec.json`` carries to the training processes (which may run under ``torchrun`` on a box without
this configuration). Launch settings (processes, GPU, shard layout) are ``deep.launch``
(:class:`vidrec.config.sections.LaunchConf`).
"""

from __future__ import annotations

from typing import Any

from vidrec import constants as C
from vidrec.config.sections import DeepConf, resolve_readout, to_mapping

#: Model names this package trains, in the order of the design's algorithm list.
MODEL_NAMES: tuple[str, ...] = (
    C.ALGO_NCF,
    C.ALGO_MULTVAE,
    C.ALGO_SEQUENCE,
    C.ALGO_GRU,
    C.ALGO_TEXT,
    C.ALGO_FUSION,
)


def model_params(deep: DeepConf, model_name: str, protocol: str = "time") -> dict[str, Any]:
    """Parameters of ``model_name``: ``deep.train`` then ``deep.<model_name>``, as a fresh dictionary.

    A sequence model's ``readout: auto`` is resolved for ``protocol`` (``evaluation.protocol`` of the
    fit; the nightly's is ``time``): see :func:`vidrec.config.sections.resolve_readout`.

    Raises
    ------
    ValueError
        On an unknown model name.
    """
    if model_name not in MODEL_NAMES:
        raise ValueError(f"unknown deep model '{model_name}' (known: {', '.join(MODEL_NAMES)})")
    params = {**to_mapping(deep.train), **to_mapping(getattr(deep, model_name))}
    if "readout" in params:
        params["readout"] = resolve_readout(str(params["readout"]), protocol)
    return params
