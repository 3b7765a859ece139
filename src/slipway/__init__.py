"""slipway: take a trained model from pilot to production and keep it healthy there.

>>> import slipway
>>> client = slipway.Client("http://127.0.0.1:8750", token="slw_...")
>>> client.register(model, name="churn", X_train=X, y_train=y)
"""

__version__ = "0.1.0"

from slipway.client import Client  # noqa: E402 - __version__ first: submodules import it
from slipway.errors import SlipwayError  # noqa: E402

__all__ = ["Client", "SlipwayError", "__version__"]
