"""Who may call: principals, tokens, roles and grants, rate limits."""

from slipway.access.authz import Grant, Permission, Principal, authorize
from slipway.access.principals import PrincipalService, bootstrap_admin
from slipway.access.tokens import TokenService, token_looks_valid

__all__ = [
    "Grant",
    "Permission",
    "Principal",
    "PrincipalService",
    "TokenService",
    "authorize",
    "bootstrap_admin",
    "token_looks_valid",
]
