"""The relational store: engine, schema, migrations. Knows no service."""

from slipway.store.engine import open_engine, transaction
from slipway.store.migrate import upgrade

__all__ = ["open_engine", "transaction", "upgrade"]
