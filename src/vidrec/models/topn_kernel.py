"""The Spark-free scoring kernel of :mod:`vidrec.models.topn`: block sizes; a block's GEMM, seen mask, top-k.

Kept apart from :mod:`.topn` (which is a Spark ``mapInArrow`` around it) so that the same code runs
where there is no Spark: ``bench/gpu_check.py`` times it on a GPU box without Java.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: Target scores per block on CPU (block rows x items): keeps the block in cache for ``topk``. 1M (4 MB,
#: a core's L2 on the bench's Xeon; 37 users at 27k items) is what the fair floor picks at 5m and 20M,
#: and was 1.15-1.18x faster than 6M (two runs) for the whole ``top_n_from_factors`` at the 20M shape
#: (docs/performance.md).
CPU_BLOCK_FLOATS = 1_000_000
#: Target scores per block on a GPU (~1 GiB of float32).
GPU_BLOCK_FLOATS = 1 << 28


def block_rows(n_items: int, block_size: int, device: str, cpu_floats: int = CPU_BLOCK_FLOATS) -> int:
    """Users scored per block: ``block_size`` capped so a block holds about the target number of scores
    (``cpu_floats`` on CPU, :data:`GPU_BLOCK_FLOATS` on a GPU)."""
    if device.startswith("cuda"):  # bigger blocks amortise the transfers; bounded by device memory
        return max(block_size, GPU_BLOCK_FLOATS // max(1, n_items))
    return max(1, min(block_size, max(32, int(cpu_floats) // max(1, n_items))))


def topk_masked(
    scores: torch.Tensor, rows: np.ndarray, cols: np.ndarray, k: int, device: str
) -> tuple[np.ndarray, np.ndarray]:
    """Mask ``(rows, cols)`` to ``-inf`` in the torch ``scores`` block, then its top ``k`` per row.

    Returns ``(positions, scores)`` as NumPy arrays on the host: int32 item columns and float32.
    """
    import torch

    if len(rows):
        r = torch.as_tensor(rows, dtype=torch.long).to(device, non_blocking=True)
        c = torch.as_tensor(cols, dtype=torch.long).to(device, non_blocking=True)
        scores[r, c] = float("-inf")
    top_scores, top_pos = torch.topk(scores, k, dim=1)
    return top_pos.to(torch.int32).cpu().numpy(), top_scores.cpu().numpy()


def score_user_block(
    user_vecs: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    items_t: torch.Tensor,
    k: int,
    device: str,
) -> tuple[np.ndarray, np.ndarray]:
    """One block: ``user_vecs @ items_t``, seen ``(rows, cols)`` masked, top ``k`` per user.

    Parameters
    ----------
    user_vecs : (b, r) float32 array, writable (torch wraps it without a copy)
    rows, cols : int arrays of equal length
        Seen pairs as (row of ``user_vecs``, item column).
    items_t : (r, m) tensor on ``device``
        The item factors, transposed (kept on the device across blocks).
    k : int
    device : str

    Returns
    -------
    positions : (b, k) int32 array of item columns
    scores : (b, k) float32 array, ``-inf`` where fewer than ``k`` unseen items exist
    """
    import torch

    u = torch.from_numpy(user_vecs)
    if device != "cpu":
        u = u.pin_memory().to(device, non_blocking=True)
    return topk_masked(u @ items_t, rows, cols, k, device)
