"""The tamper-evident audit log: hash chain, signed checkpoints, verification."""

from slipway.audit.chain import GENESIS, SYSTEM, Actor, append, canonical_json, event_hash

__all__ = ["GENESIS", "SYSTEM", "Actor", "append", "canonical_json", "event_hash"]
