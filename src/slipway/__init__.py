"""slipway: take a trained model from pilot to production and keep it healthy there.

>>> import slipway
>>> client = slipway.Client("http://127.0.0.1:8750", token="slw_...")
>>> client.register(model, name="churn", X_train=X, y_train=y)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from slipway.errors import SlipwayError  # noqa: E402 - __version__ first: submodules import it

if TYPE_CHECKING:
    from slipway.client import Client

__all__ = ["Client", "SlipwayError", "__version__"]


def __getattr__(name: str) -> Any:
    # The client (and httpx under it) loads on first use: the server, its sandbox
    # processes and the local CLI commands import this package but never call a server,
    # and httpx is about 0.1-0.2 s of each one's start-up.
    if name == "Client":
        from slipway.client import Client

        return Client
    raise AttributeError(f"module 'slipway' has no attribute {name!r}")
