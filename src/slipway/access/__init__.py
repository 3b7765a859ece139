"""Who may call: tokens (and, with the security issue, principals, roles and grants)."""

from slipway.access.authz import Permission, Principal, authorize
from slipway.access.tokens import TokenService, issue_token, token_looks_valid

__all__ = [
    "Permission",
    "Principal",
    "TokenService",
    "authorize",
    "issue_token",
    "token_looks_valid",
]
