"""Who may see what: roles, small-group suppression, personal-data columns, redaction of secrets.

The names below are this capability's public interface (what the rest of fairwatch uses); each loads
its module on first use (metrics/lazy.py).
"""

from fairwatch.metrics.lazy import lazy_interface

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
__all__, __getattr__, __dir__ = lazy_interface(__name__, _EXPORTS)
