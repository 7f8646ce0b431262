"""The one place that lists the candidate generators: algorithm name -> ``FitContext -> Candidates``.

Adding a model is one module under :mod:`vidrec.models` with a generator function and one line in
:data:`GENERATORS`. Models never import this module; the layers above (serving, evaluation,
pipeline) look generators up here. The hybrid is not a generator: it blends generators' lists and
lives in :mod:`vidrec.serving.hybrid`.
"""

from __future__ import annotations

from vidrec import constants as C
from vidrec.models.als import generate_als
from vidrec.models.base import Generator
from vidrec.models.content import generate_content
from vidrec.models.deep.generators import (
    generate_fusion,
    generate_gru,
    generate_multvae,
    generate_ncf,
    generate_sequence,
    generate_text,
)
from vidrec.models.ease import generate_ease
from vidrec.models.itemknn import generate_itemknn
from vidrec.models.popularity import generate_popularity

#: Algorithm name -> generator, in the order of :data:`vidrec.constants.ALGORITHMS`.
GENERATORS: dict[str, Generator] = {
    C.ALGO_POPULARITY: generate_popularity,
    C.ALGO_ALS: generate_als,
    C.ALGO_ITEMKNN: generate_itemknn,
    C.ALGO_CONTENT: generate_content,
    C.ALGO_EASE: generate_ease,
    C.ALGO_NCF: generate_ncf,
    C.ALGO_MULTVAE: generate_multvae,
    C.ALGO_SEQUENCE: generate_sequence,
    C.ALGO_GRU: generate_gru,
    C.ALGO_TEXT: generate_text,
    C.ALGO_FUSION: generate_fusion,
}


def get(name: str) -> Generator:
    """The generator of algorithm ``name``.

    Raises
    ------
    KeyError
        Naming the algorithm and the known ones.
    """
    if name not in GENERATORS:
        raise KeyError(f"no generator for algorithm '{name}' (available: {', '.join(sorted(GENERATORS))})")
    return GENERATORS[name]


def available() -> list[str]:
    """Names of the generators (sorted)."""
    return sorted(GENERATORS)
