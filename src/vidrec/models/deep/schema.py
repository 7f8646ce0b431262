"""Column names of the feature shards, shared by the Spark writers and the (Spark-free) trainers.

Item arrays (bags, sequences) hold ``item_idx`` values padded with :data:`PAD_ITEM`; token arrays
hold hashed token ids in ``[1, num_buckets)`` padded with :data:`PAD_TOKEN`.
"""

from __future__ import annotations

from vidrec.constants import COL_AUDIO_EMB, COL_ITEM_IDX, COL_USER_IDX, COL_VISUAL_EMB

# Files of a model's artifact folder (``<artifact_dir>/``), named here so that code without torch
# (the erasure's file walk) can tell them apart.
MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.json"
SPEC_FILE = "spec.json"
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_PREFIX = "epoch-"
DIAGNOSTICS_DIR = "diagnostics"

COL_LABEL = "label"  # float 1.0 (positive) / 0.0 (sampled negative)
COL_BAG = "items"  # array<int>: a user's positive items, right-padded
COL_SEQ = "seq"  # array<int>: a user's items in time order, left-padded
COL_LENGTH = "length"  # int: real (unpadded) entries of COL_BAG / COL_SEQ
COL_ITEM_A = "item_a"  # co-watched pair
COL_ITEM_B = "item_b"
COL_TOKENS = "tokens"  # array<int>: hashed metadata and text tokens, right-padded
COL_TEXT = "text"  # array<int>: hashed title + description tokens in reading order, right-padded
COL_KNOWN = "known"  # int 1 when the item has a positive training interaction
COL_FREQ = "freq"  # int: occurrences of the item in the text model's training pairs (either side)
COL_VISUAL = COL_VISUAL_EMB
COL_AUDIO = COL_AUDIO_EMB
COL_EMBEDDING = "embedding"  # array<float> of an exported user or item embedding

PAD_ITEM = -1
PAD_TOKEN = 0

#: Split names of a model's shards.
TRAIN = "train"
VAL = "val"
ITEMS = "items"

__all__ = [
    "COL_AUDIO",
    "COL_BAG",
    "COL_EMBEDDING",
    "COL_FREQ",
    "COL_ITEM_A",
    "COL_ITEM_B",
    "COL_ITEM_IDX",
    "COL_KNOWN",
    "COL_LABEL",
    "COL_LENGTH",
    "COL_SEQ",
    "COL_TEXT",
    "COL_TOKENS",
    "COL_USER_IDX",
    "COL_VISUAL",
    "ITEMS",
    "PAD_ITEM",
    "PAD_TOKEN",
    "TRAIN",
    "VAL",
]
