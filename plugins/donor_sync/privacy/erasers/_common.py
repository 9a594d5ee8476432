"""What every eraser shares: failed receipts without PII, and spotting PII in free text."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from donor_sync.delivery.contracts import DeliveryError
from donor_sync.privacy.contracts import Receipt, RemoteRef

_WORD = re.compile(r"[^\W\d_]{2,}", re.UNICODE)
_DIGITS = re.compile(r"\D+")


def error_text(exc: Exception) -> str:
    """Return a receipt's error from an exception: class, HTTP status and vendor code only.

    Vendor messages can quote what was sent (emails, names), so they are never copied.
    """
    if isinstance(exc, DeliveryError):
        parts = [str(exc.error_class)]
        if exc.http_status is not None:
            parts.append(f"HTTP {exc.http_status}")
        if exc.error_code:
            parts.append(str(exc.error_code)[:80])
        return " ".join(parts)
    return type(exc).__name__


def failed_receipt(
    system: str, action: str, exc: Exception, refs: Sequence[RemoteRef] = (), step: str = ""
) -> Receipt:
    """Return a failed receipt for ``exc`` (ids and codes only; the request is retried next run)."""
    where = f"{step}: " if step else ""
    return Receipt(
        system=system,
        action=action,
        status="failed",
        remote_refs=tuple(refs),
        verified=False,
        error=f"{where}{error_text(exc)}",
    )


class PiiMatcher:
    """Finds a donor's name words, emails or phone digits in free text (record names).

    :param names: first, last and full names as the destination holds them.
    :param emails: every email of the donor.
    :param phones: every phone of the donor (matched on their last 7+ digits).
    :param ignore: words that are not the donor's (the anonymized placeholders).
    """

    def __init__(
        self,
        names: Iterable[str | None] = (),
        emails: Iterable[str | None] = (),
        phones: Iterable[str | None] = (),
        ignore: Iterable[str] = (),
    ) -> None:
        skip = {w.lower() for text in ignore for w in _WORD.findall(text)}
        self.words = {w.lower() for text in names if text for w in _WORD.findall(text)} - skip
        self.emails = {e.strip().lower() for e in emails if e and e.strip()}
        self.phones = {d[-7:] for p in phones if p for d in [_DIGITS.sub("", p)] if len(d) >= 7}

    def __bool__(self) -> bool:
        return bool(self.words or self.emails or self.phones)

    def found_in(self, text: str | None) -> bool:
        """Return whether ``text`` holds any of the donor's name words, emails or phones."""
        if not text:
            return False
        lowered = text.lower()
        if any(email in lowered for email in self.emails):
            return True
        if self.words & {w.lower() for w in _WORD.findall(text)}:
            return True
        digits = _DIGITS.sub("", text)
        return any(phone in digits for phone in self.phones)
