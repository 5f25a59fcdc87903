"""Who may see what: roles, small-group suppression, personal-data columns, redaction of secrets.

The names below are this capability's public interface (what the rest of fairwatch uses); each loads
its module on first use, so importing one module of the package does not import the others.

The names below are this capability's public interface (what the rest of fairwatch uses); each loads
its module on first use, so importing one module of the package does not import the others.

The names below are this capability's public interface (what the rest of fairwatch uses); each loads
its module on first use, so importing one module of the package does not import the others.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "AccessConfigError": "roles",
    "AccessRules": "roles",
    "KNOWN_TABLES": "suppression",
    "OIDC_MODE": "roles",
    "PAGES": "roles",
    "PERMISSIONS": "roles",
    "Principal": "roles",
    "ROLES": "roles",
    "ROLE_SUMMARY": "roles",
    "SuppressionSummary": "suppression",
    "allowed": "roles",
    "first_role": "roles",
    "hidden_groups": "suppression",
    "iter_tables": "suppression",
    "local_principal": "roles",
    "no_role_message": "roles",
    "not_permitted_message": "roles",
    "page_for_title": "roles",
    "parse_rules": "roles",
    "permissions_of": "roles",
    "personal_data_kind": "personal",
    "personal_data_reason": "personal",
    "principal_from_claims": "roles",
    "redact_document": "redaction",
    "redact_secrets": "redaction",
    "required_permissions": "roles",
    "resolve_role": "roles",
    "shown_columns": "personal",
    "slice_key": "suppression",
    "slice_text": "suppression",
    "suppress_document": "suppression",
    "visible_pages": "roles",
    "visible_rates": "roles",
    "visible_snapshot": "roles",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Load a public name from its module on first use."""
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names, for completion in notebooks."""
    return __all__
