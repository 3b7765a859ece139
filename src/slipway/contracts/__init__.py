"""Input/output contracts of a version. The spine keeps names and types (the signature);
the contracts issue deepens it with value constraints and quarantine."""

from slipway.contracts.signature import FIELD_TYPES, Field, Signature

__all__ = ["FIELD_TYPES", "Field", "Signature"]
