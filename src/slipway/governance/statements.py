"""What people write with governance decisions — rationales, notes, reasons. Each is
audited and shown to reviewers later, so each is checked the same way."""

from __future__ import annotations

from typing import Any

from slipway.errors import ValidationFailed

MAX_CHARS = 4000


def statement(
    value: Any,
    field: str,
    *,
    required: bool = True,
    asks: str = "say why",
    max_chars: int = MAX_CHARS,
) -> str:
    """``value`` stripped; ValidationFailed on ``field`` if it is not a string, is empty
    while ``required`` (the message says what it ``asks`` for) or is too long."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationFailed.field(field, f"must be a string ({asks})")
    text = value.strip()
    if required and not text:
        raise ValidationFailed.field(field, f"is required: {asks}")
    if len(text) > max_chars:
        raise ValidationFailed.field(field, f"at most {max_chars:,} characters")
    return text
