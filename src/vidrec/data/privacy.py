"""Pseudonymous user ids and what profile columns are stored (``privacy`` in the configuration).

With ``privacy.pseudonymize: true``, ingest replaces every ``user_id`` by ``HMAC-SHA256(key, user_id)``
(64 lowercase hex characters) before anything is written, so bronze, silver, gold and the quarantine
hold pseudonyms only. The key never sits in YAML: it comes from the environment variable named by
``privacy.key_env``, else from the file named by ``privacy.key_file`` (:func:`load_key`). Whoever holds
the key can compute a user's pseudonym (:func:`pseudonym`: ``forget_user`` does, and so must the
serving edge, to look a user's lists up); nobody can turn a pseudonym back into the id.

In Spark the HMAC is two ``sha2`` calls over the key's inner and outer pads (RFC 2104), which are
cross-joined in from a one-row frame rather than written into the plan as literals, so the query
plans that Spark logs and shows in its UI never carry bytes derived from the key.

The quarantine's ``raw`` text is rewritten too (:func:`redact_raw`): the record's user id, found as the
value of its ``user_id`` field, is replaced wherever it stands as a whole token by its pseudonym. A
record of ``events`` or ``users`` whose user id cannot be found (e.g. truncated JSON, a CSV line with
the wrong number of fields) cannot be told free of ids, so its raw text is withheld (null); its
source file, reason and run date stay.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.config import ConfigError
from vidrec.config.sections import PrivacyConf

#: Shortest key accepted (bytes): HMAC-SHA256 wants at least the hash's 32; 16 is the floor we refuse below.
MIN_KEY_BYTES = 16
_BLOCK = 64  # SHA-256's block size in bytes
_IPAD, _OPAD = "_vidrec_ipad", "_vidrec_opad"
#: Entities whose raw records carry a user id.
USER_ENTITIES = ("events", "users")
_DELIMS = r"\s\"',:;|\[\]{}()="
#: The value of a ``"user_id"`` field in raw JSON: a quoted string (escapes allowed) or a bare token.
_FIELD_VALUE = r'"user_id"\s*:\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,}\]"]+))'


def load_key(pc: PrivacyConf, environ: dict[str, str] | None = None) -> bytes | None:
    """The pseudonymisation key (``None`` when ``privacy.pseudonymize`` is off).

    Raises
    ------
    ConfigError
        When pseudonymisation is on and neither the variable ``privacy.key_env`` nor the file
        ``privacy.key_file`` gives a key of at least :data:`MIN_KEY_BYTES` bytes.
    """
    if not pc.pseudonymize:
        return None
    env = os.environ if environ is None else environ
    value = env.get(pc.key_env, "")
    source = f"environment variable {pc.key_env}"
    if not value.strip() and pc.key_file:
        path = Path(pc.key_file).expanduser()
        source = f"privacy.key_file {path}"
        try:
            value = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"privacy.pseudonymize is on but the key cannot be read: {source}: {exc.strerror or exc}"
            ) from exc
    key = value.strip().encode("utf-8")
    if not key:
        where = f"the environment variable {pc.key_env}" + (
            f" or the file {pc.key_file}" if pc.key_file else ""
        )
        raise ConfigError(
            f"privacy.pseudonymize is on but no key was given: set {where} (privacy.key_env, "
            "privacy.key_file); the key must never be written into a YAML file"
        )
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"privacy.pseudonymize: the key from {source} has {len(key)} bytes; want at least {MIN_KEY_BYTES}"
        )
    return key


def pseudonym(key: bytes, user_id: str) -> str:
    """``HMAC-SHA256(key, user_id)`` as 64 lowercase hex characters: what ingest stores for ``user_id``.

    The id is trimmed first, as ingest trims it. This is the function the serving edge applies to a
    user id before looking the user's lists up.
    """
    return hmac.new(key, user_id.strip().encode("utf-8"), hashlib.sha256).hexdigest()


def _pads(key: bytes) -> tuple[bytes, bytes]:
    k = hashlib.sha256(key).digest() if len(key) > _BLOCK else key
    k = k.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in k), bytes(b ^ 0x5C for b in k)


def _with_pads(df: DataFrame, key: bytes) -> DataFrame:
    ipad, opad = _pads(key)
    pads = df.sparkSession.createDataFrame(
        [(bytearray(ipad), bytearray(opad))], f"{_IPAD} binary, {_OPAD} binary"
    )
    return df.crossJoin(F.broadcast(pads))


def _hmac(value: Column) -> Column:
    """HMAC-SHA256 of the UTF-8 bytes of ``value`` (hex); needs the pad columns of :func:`_with_pads`."""
    inner = F.unhex(F.sha2(F.concat(F.col(_IPAD), F.encode(value, "UTF-8")), 256))
    return F.sha2(F.concat(F.col(_OPAD), inner), 256)


def pseudonymize_ids(df: DataFrame, key: bytes, column: str = C.COL_USER) -> DataFrame:
    """``df`` with ``column`` replaced by the pseudonym of its trimmed value (null and blank kept as is)."""
    trimmed = F.trim(F.col(column))
    present = F.col(column).isNotNull() & (trimmed != "")
    out = _with_pads(df, key).withColumn(column, F.when(present, _hmac(trimmed)).otherwise(F.col(column)))
    return out.drop(_IPAD, _OPAD)


def _token_pattern(value: Column) -> Column:
    """A Java regex matching ``value`` as a whole token (the rule of ``forget``'s raw-text match)."""
    quoted = F.concat(F.lit("\\Q"), F.replace(value, F.lit("\\E"), F.lit("\\E\\\\E\\Q")), F.lit("\\E"))
    return F.concat(F.lit(f"(?<![^{_DELIMS}])"), quoted, F.lit(f"(?![^{_DELIMS}])"))


def redact_raw(quarantine: DataFrame, key: bytes, entity_col: str = "entity") -> DataFrame:
    """The quarantine with each user id in ``raw`` replaced by its pseudonym (see the module docstring).

    Rows of other entities (``items``) are kept as they are. For ``events`` and ``users`` rows, the id
    is the ``user_id`` field's value in the raw text (quoted or bare): each whole-token occurrence of
    it is replaced. A record that is valid JSON without a ``user_id`` field keeps its text; any other
    record whose id cannot be found has its raw text withheld (null).
    """
    raw = F.col(C.COL_RAW)
    quoted = F.regexp_extract(raw, _FIELD_VALUE, 1)
    bare = F.regexp_extract(raw, _FIELD_VALUE, 2)
    found = F.when(quoted != "", quoted).when(bare != "", bare)
    token = F.trim(found)
    replaced = F.regexp_replace(raw, _token_pattern(token), _hmac(token))
    no_id_field = F.json_object_keys(raw).isNotNull() & ~F.array_contains(F.json_object_keys(raw), C.COL_USER)
    redacted = (
        F.when(raw.isNull(), raw)
        .when(token.isNotNull() & (token != ""), replaced)
        .when(no_id_field, raw)
        .otherwise(F.lit(None).cast("string"))
    )
    is_user_entity = F.col(entity_col).isin(*USER_ENTITIES)
    out = _with_pads(quarantine, key).withColumn(C.COL_RAW, F.when(is_user_entity, redacted).otherwise(raw))
    return out.drop(_IPAD, _OPAD)


def stored_profile_columns(pc: PrivacyConf) -> tuple[str, ...]:
    """Profile columns ``silver/users`` stores besides ``user_id`` and ``updated_at``."""
    return (*C.PROFILE_COLUMNS, *[c for c in C.PROFILE_OPTIONAL_COLUMNS if c in pc.keep_profile_columns])
