"""The registry: models (inventory entries) and their immutable versions, with lineage."""

from slipway.registry.models import Model, ModelService
from slipway.registry.versions import Version, VersionService

__all__ = ["Model", "ModelService", "Version", "VersionService"]
