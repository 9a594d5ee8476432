"""Vectorized helpers over numpy string arrays (StringDType) used by every other module."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

STR = np.dtypes.StringDType()
StrArray = npt.NDArray[Any]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_BASE62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
_BASE36 = np.frombuffer(b"0123456789abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)


def cat(*parts: StrArray | str) -> StrArray:
    """Concatenate string arrays (and scalars) element-wise."""
    out: StrArray = np.asarray(parts[0], dtype=STR)
    for part in parts[1:]:
        out = np.strings.add(out, np.asarray(part, dtype=STR))
    return out


def to_str(values: npt.NDArray[Any], width: int = 0) -> StrArray:
    """Format integers as strings, zero-padded to ``width``."""
    out: StrArray = np.asarray(values).astype(STR)
    if width:
        out = np.strings.zfill(out, width)
    return out


def random_tokens(rng: np.random.Generator, n: int, length: int, alphabet: str = "base62") -> StrArray:
    """Return ``n`` random tokens of ``length`` characters (Stripe-style id bodies)."""
    table = _BASE62 if alphabet == "base62" else _BASE36
    codes = table[rng.integers(0, len(table), size=(n, length))]
    raw = np.ascontiguousarray(codes).view(f"S{length}").ravel()
    return raw.astype(STR)


def prefixed_ids(rng: np.random.Generator, prefix: str, n: int, length: int = 24) -> StrArray:
    """Return ``n`` unique ids such as ``ch_3Mml...``, with a sequence tail so they never collide."""
    body = random_tokens(rng, n, length - 6)
    # A multiplicative scramble of the sequence number: unique (a bijection modulo 62**6), not sequential.
    seq = (np.arange(n, dtype=np.int64) * 9_999_991 + 1_234_567) % 62**6
    digits = np.empty((n, 6), dtype=np.uint8)
    for pos in range(5, -1, -1):
        digits[:, pos] = _BASE62[seq % 62]
        seq //= 62
    tail = np.ascontiguousarray(digits).view("S6").ravel().astype(STR)
    return cat(prefix, body, tail)


def pick(rng: np.random.Generator, n: int, share: float) -> BoolArray:
    """Return a mask selecting each of ``n`` items with probability ``share``."""
    return np.asarray(rng.random(n) < share)


def choose(rng: np.random.Generator, values: StrArray, n: int, p: npt.NDArray[Any] | None = None) -> StrArray:
    """Draw ``n`` values (with replacement, optionally weighted)."""
    idx = rng.choice(len(values), size=n, p=p)
    out: StrArray = values[idx]
    return out


def iso_ms(seconds: IntArray) -> StrArray:
    """Format unix seconds as ISO-8601 UTC with milliseconds and a ``Z`` (``2024-03-01T14:22:11.000Z``)."""
    stamps = np.asarray(seconds, dtype=np.int64).astype("datetime64[s]").astype("datetime64[ms]")
    return cat(np.datetime_as_string(stamps, unit="ms").astype(STR), "Z")


def iso_date(seconds: IntArray) -> StrArray:
    """Format unix seconds as ``YYYY-MM-DD``."""
    days = np.asarray(seconds, dtype=np.int64).astype("datetime64[s]").astype("datetime64[D]")
    out: StrArray = np.datetime_as_string(days, unit="D").astype(STR)
    return out


def blank_where(values: StrArray, mask: BoolArray) -> StrArray:
    """Return a copy of ``values`` with empty strings where ``mask`` is set."""
    out: StrArray = np.where(mask, np.asarray("", dtype=STR), values).astype(STR)
    return out


def lookup(mapping: dict[str, Any], keys: StrArray) -> npt.NDArray[Any]:
    """Map each key through a small dict, vectorized (every key must be present)."""
    names = sorted(mapping)
    values = np.array([mapping[k] for k in names])
    if values.dtype.kind == "U":
        values = values.astype(STR)
    out: npt.NDArray[Any] = values[np.searchsorted(np.array(names, dtype=STR), keys)]
    return out
