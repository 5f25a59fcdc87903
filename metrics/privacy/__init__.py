"""Who may see what: roles, small-group suppression, personal-data columns, redaction of secrets.

Each module below lists the names it gives this capability's public interface (metrics/lazy.py).
"""

from fairwatch.metrics.lazy import lazy_interface

__all__, __getattr__, __dir__ = lazy_interface(__name__, {
    "personal": ("personal_data_kind", "personal_data_reason", "shown_columns"),
    "redaction": ("redact_document", "redact_secrets"),
    "roles": (
        "AccessConfigError", "AccessRules", "OIDC_MODE", "PAGES", "PERMISSIONS", "Principal", "ROLES",
        "ROLE_SUMMARY", "allowed", "first_role", "local_principal", "no_role_message", "not_permitted_message",
        "page_for_title", "parse_rules", "permissions_of", "principal_from_claims", "required_permissions",
        "resolve_role", "visible_pages", "visible_rates", "visible_snapshot"
    ),
    "suppression": (
        "KNOWN_TABLES", "SuppressionSummary", "hidden_groups", "iter_tables", "slice_key", "slice_text",
        "suppress_document"
    ),
    "withholding": ("jsonable", "suppress_below", "withhold"),
})
