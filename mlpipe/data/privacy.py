"""Personal data: hashed as it is read, and found where nobody listed it.

Columns listed in ``dataset.pii`` are replaced by a keyed hash (HMAC-SHA-256) the moment a
block leaves the source reader, so the run's copy of the data, and everything made from it
(quarantine files, report examples, drift tables, the model card, the model's input example,
Prefect artifacts and logs), holds only hashes. Equal values keep equal hashes, so a listed
column still works as a join key or a duplicate check; it is never a feature.

The key comes from ``MLPIPE_PII_SALT``; without it, from a file created once under the user's
home (``~/.mlpipe/pii-salt``, readable by its owner only), so the same value hashes alike on
every run of this machine (and the data digest stays reproducible). Share the variable to get
the same hashes on other machines.

:func:`suspects` flags columns that look like personal data (e-mail addresses, phone numbers,
card numbers, people's names) on the inference sample; training refuses them until each is
listed in ``dataset.pii`` or ``dataset.allow_pii``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("mlpipe.privacy")

SALT_ENV = "MLPIPE_PII_SALT"
HASH_PREFIX = "pii:"
HASH_CHARS = 20  # 80 bits of the HMAC: collisions are negligible below billions of values
# A column is flagged when this share of its non-missing sampled values has the shape.
SHARE = 0.8
MIN_VALUES = 5  # fewer non-missing sampled values than this: no verdict
# Free-text names: flagged only above this many distinct values (a handful of names is a
# category: "Adelie", "Gentoo") and this distinct share.
NAME_MIN_DISTINCT = 20
NAME_DISTINCT_SHARE = 0.3

_HASHED = re.compile(rf"{HASH_PREFIX}[0-9a-f]{{{HASH_CHARS}}}")
# Any script: "josé@exämple.de" is an address too.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)*\.[^\W\d_]{2,}$")
EMAIL_SHARE = 0.5  # an address is unmistakable: half a column of them is enough
# Digits with the separators people write phone numbers with: 10-15 digits (a ZIP+4 code has
# 9), and either a leading "+" or a separator, so a plain number column is not taken for phones.
_PHONE = re.compile(
    r"^(?=(?:\D*\d){10,15}\D*$)\+?[\d\s().\-/]{10,25}(?:\s*(?:x|ext\.?)\s*\d{1,5})?$"
)
_PHONE_SHAPE = re.compile(r"^\+|[\s().\-/]")
_NOT_PHONE = re.compile(
    r"^\d{1,3}(?:\.\d{1,3}){3}$|^97[89][\-\s]?(?:\d[\-\s]?){9}\d$"
)  # IPv4, ISBN
_CARD = re.compile(r"^(?:\d[ \-]?){12,18}\d$")
# Two or three capitalised words in any script ("José García", "O'Brien", "McDonald"), or
# "Last, First".
_WORD = r"[^\W\d_][^\W\d_'\-]*(?:['\-][^\W\d_]+)*"
_NAME = re.compile(rf"^{_WORD}(?:,? {_WORD}\.?){{1,2}}$")


def _salt() -> bytes:
    value = os.environ.get(SALT_ENV)
    if value:
        return value.encode()
    path = Path.home() / ".mlpipe" / "pii-salt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two runs starting together keep the first one's salt.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            log.info("created the personal-data hashing key %s (or set %s)", path, SALT_ENV)
    return path.read_text().strip().encode()


def hash_values(series: pd.Series, salt: bytes) -> pd.Series:
    """Each value's keyed hash as text (``pii:<hex>``); missing values stay missing.

    A value that already is such a hash is kept (a kept monitoring batch read again), so
    hashing twice changes nothing.
    """
    present = series.notna()
    text = _canonical_text(series[present])
    uniques = pd.unique(text.to_numpy())
    table = {
        v: v
        if _HASHED.fullmatch(v)
        else HASH_PREFIX + hmac.new(salt, v.encode(), hashlib.sha256).hexdigest()[:HASH_CHARS]
        for v in uniques
    }
    out = pd.Series(pd.NA, index=series.index, dtype="str")
    out[present] = text.map(table)
    return out


def _canonical_text(values: pd.Series) -> pd.Series:
    """Values as the text that is hashed: a number the same however its block was typed.

    A whole number read as a float (its block had a missing value) is written as an integer,
    so 5551234567 and 5551234567.0 hash alike.
    """
    if pd.api.types.is_float_dtype(values.dtype):
        whole = np.isfinite(values) & (values == np.round(values))
        text = values.astype("str")
        text[whole] = values[whole].map(lambda v: str(int(v)))
        return text
    if values.dtype == object:
        return values.map(
            lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
        )
    return values.astype("str")


def masker(columns: Sequence[str]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A function that hashes ``columns`` of a frame (those present; identity for none)."""
    if not columns:
        return lambda frame: frame
    salt = _salt()

    def mask(frame: pd.DataFrame) -> pd.DataFrame:
        present = [c for c in columns if c in frame.columns]
        if not present:
            return frame
        out = frame.copy(deep=False)
        for col in present:
            out[col] = hash_values(frame[col], salt)
        return out

    return mask


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _capitalised(value: str) -> bool:
    """Every word starts with a capital ("Ann Lee", "ANN LEE", "Lee, Ann")."""
    return all(w[0].isupper() for w in value.replace(",", " ").split())


def _kind(values: pd.Series) -> str | None:
    """What personal data ``values`` (non-missing, as text) look like, if any."""
    n = len(values)
    if n < MIN_VALUES:
        return None

    def share(mask: pd.Series | np.ndarray) -> float:
        return float(np.mean(mask))

    if share(values.str.fullmatch(_EMAIL)) >= EMAIL_SHARE:
        return "e-mail addresses"
    cards = values[values.str.fullmatch(_CARD)]
    if len(cards) >= SHARE * n:
        digits = cards.str.replace(r"\D", "", regex=True)
        if share(digits.map(_luhn)) * len(cards) >= SHARE * n:
            return "card numbers"
    phones = (
        values.str.fullmatch(_PHONE)
        & values.str.contains(_PHONE_SHAPE)
        & ~values.str.fullmatch(_NOT_PHONE)
    )
    if share(phones) >= SHARE:
        return "phone numbers"
    distinct = values.nunique()
    if (
        distinct >= NAME_MIN_DISTINCT
        and distinct >= NAME_DISTINCT_SHARE * n
        and share(values.str.fullmatch(_NAME) & values.map(_capitalised)) >= SHARE
    ):
        return "people's names"
    return None


def suspects(sample: pd.DataFrame, skip: Sequence[str] = ()) -> dict[str, str]:
    """Columns of ``sample`` that look like personal data, with what they look like.

    Text columns are checked for e-mail addresses, phone numbers, card numbers (Luhn-valid,
    13-19 digits) and people's names (two or three capitalised words, many distinct values);
    integer columns for card numbers. ``skip``: columns already listed.
    """
    found: dict[str, str] = {}
    for col in sample.columns:
        if col in skip:
            continue
        series = sample[col].dropna()
        if pd.api.types.is_integer_dtype(series.dtype):
            text = series.astype("int64").astype("str")
            kind = _kind(text)
            kind = kind if kind == "card numbers" else None
        elif pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(
            series.dtype
        ):
            continue
        else:
            kind = _kind(series.astype("str").str.strip())
        if kind is not None:
            found[str(col)] = kind
    return found


def refusal(found: dict[str, str]) -> str:
    """The one line that refuses to train on unlisted personal data."""
    named = ", ".join(f"'{c}' ({kind})" for c, kind in found.items())
    listed = ", ".join(found)
    return (
        f"column(s) {named} look like personal data: list them in dataset.pii (hashed "
        f"everywhere, never a feature: dataset.pii=[{listed}]) or, if they are not personal, "
        f"in dataset.allow_pii"
    )
