"""Who may see what: roles, permissions, the page table, and a user's role from OIDC claims.

Pure: no Streamlit, no I/O. The access config is read in `connectors/access.py`; the gate that
applies these rules on every page is `pages/components/auth.py`.

Roles are ordered, each sees everything the one before it sees:

- viewer: aggregates only, with small cells withheld as in exports;
- analyst: also small cells, data sources, drill-down, example rows and the labelling queue;
- auditor: also creating, downloading and verifying snapshots, and the access log.

A user gets the highest role any rule gives them (an e-mail allow-list entry, or a value of the
configured OIDC claim such as `groups`); no matching rule means no role, and no role sees nothing.
Without sign-in configured (local mode) the one local user is an auditor, as before roles existed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from metrics.errors import AccessConfigError
from metrics.suppression import hidden_groups, slice_key

if TYPE_CHECKING:  # pandas and the audit types load only where a snapshot is filtered (keeps `fairwatch serve` quick)
    from metrics.snapshot import AuditSnapshot

ROLES: tuple[str, ...] = ("viewer", "analyst", "auditor")
LOCAL_ROLE = "auditor"
LOCAL_MODE, OIDC_MODE = "local", "oidc"

# Each permission with the first role that holds it (every later role holds it too) and what it covers.
PERMISSIONS: dict[str, tuple[str, str]] = {
    "view": ("viewer", "aggregate metrics, with small cells withheld"),
    "small_cells": ("analyst", "the numbers of groups smaller than the suppression threshold"),
    "sources": ("analyst", "choosing, uploading and mapping data sources (shows sample values)"),
    "drill_down": ("analyst", "drill-down into slices"),
    "example_rows": ("analyst", "example rows"),
    "labelling": ("analyst", "the labelling queue"),
    "export": ("auditor", "creating snapshots and downloading exports"),
    "verify": ("auditor", "verifying snapshots"),
    "access_log": ("auditor", "the access log"),
    "server_paths": ("auditor", "the server's folders and file paths in messages (others see file names only)"),
}
ROLE_SUMMARY: dict[str, str] = {
    "viewer": "aggregates only, small cells withheld",
    "analyst": "everything a viewer sees, plus small cells, data sources, drill-down, example rows and labelling",
    "auditor": "everything an analyst sees, plus snapshots (create, download, verify) and the access log",
}
CONFIG_KEYS = ("claim", "roles", "log")
RULE_KEYS = ("emails", "claim_values")


@dataclass(frozen=True)
class PageAccess:
    """One page of the app: its file, its title (as in run_page and the menu) and the permission it needs."""

    file: str
    title: str
    permission: str


# Every page, in menu order. A new page adds its row here and passes the same permission to run_page;
# tests/test_roles.py checks that both agree.
PAGES: tuple[PageAccess, ...] = (
    PageAccess("app.py", "Overview", "view"),
    PageAccess("pages/1_Data_sources.py", "Data sources", "sources"),
    PageAccess("pages/2_Representation.py", "Representation", "view"),
    PageAccess("pages/3_Performance.py", "Performance", "view"),
    PageAccess("pages/4_Slices.py", "Slices", "drill_down"),
    PageAccess("pages/5_Data_quality.py", "Data quality", "small_cells"),
    # Trends shows group rates per time window, where cells are small: analysts until windows are suppressed too.
    PageAccess("pages/6_Trends.py", "Trends", "small_cells"),
    PageAccess("pages/7_Audit_export.py", "Audit export", "export"),
    PageAccess("pages/8_Data_plan.py", "Data plan", "labelling"),  # the labelling queue: rows to label
    PageAccess("pages/9_Access_log.py", "Access log", "access_log"),
)


@dataclass(frozen=True)
class AccessRules:
    """Who gets which role: e-mail allow-lists and values of one OIDC claim, each mapped to a role."""

    claim: str | None = None
    emails: tuple[tuple[str, str], ...] = ()  # (lower-case e-mail or '*@domain', role)
    claim_values: tuple[tuple[str, str], ...] = ()  # (claim value, role)

    @property
    def empty(self) -> bool:
        """True when no rule gives anyone a role."""
        return not self.emails and not self.claim_values


@dataclass(frozen=True)
class Principal:
    """The person using a session: shown on every page, written to the access log and into snapshots."""

    name: str
    user_id: str
    role: str | None
    mode: str

    def can(self, permission: str) -> bool:
        """True when this person's role holds the permission."""
        return allowed(self.role, permission)

    def label(self) -> str:
        """'Alice Example (auditor)'."""
        return f"{self.name} ({self.role or 'no role'})"

    def author(self) -> dict[str, str]:
        """The author block of a snapshot this person creates."""
        return {"name": self.name, "id": self.user_id, "role": self.role or "", "signed_in": self.mode}


def _check_permission(permission: str) -> str:
    """The permission itself; a ValueError for a name not in the table (a programming error)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}; use one of {', '.join(PERMISSIONS)}")
    return permission


def first_role(permission: str) -> str:
    """The lowest role that holds a permission."""
    return PERMISSIONS[_check_permission(permission)][0]


def allowed(role: str | None, permission: str) -> bool:
    """True when the role holds the permission (no role holds nothing)."""
    needed = first_role(permission)
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def permissions_of(role: str | None) -> tuple[str, ...]:
    """Every permission a role holds, in table order."""
    return tuple(p for p in PERMISSIONS if allowed(role, p))


def page_for_title(title: str) -> PageAccess | None:
    """The page table's row for a page title, if the page is listed."""
    return next((p for p in PAGES if p.title == title), None)


def visible_pages(role: str | None, existing: Iterable[str] | None = None) -> tuple[PageAccess, ...]:
    """The pages a role may open (and so sees in the menu); only files in `existing` when given."""
    files = set(existing) if existing is not None else None
    return tuple(p for p in PAGES if allowed(role, p.permission) and (files is None or p.file in files))


def required_permissions(title: str, permission: str) -> tuple[str, ...]:
    """What a page needs: the permission it asks for and the one the page table lists for its title."""
    listed = page_for_title(title)
    needed = [_check_permission(permission)]
    if listed is not None and listed.permission not in needed:
        needed.append(listed.permission)
    return tuple(needed)


# ----------------------------------------------------------------------------- the access config


def _strings(value: Any, where: str) -> list[str]:
    """A list of non-empty strings, or an AccessConfigError naming where."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise AccessConfigError(f"{where} must be a list of non-empty strings, e.g. [\"alice@example.org\"]")
    return [v.strip() for v in value]


def _email_rule(text: str, where: str) -> str:
    """An allow-list entry: 'name@domain' or '*@domain', lower-cased."""
    entry = text.lower()
    local, at, domain = entry.rpartition("@")
    if not at or not local or not domain or "." not in domain or " " in entry:
        raise AccessConfigError(f"{where}: {text!r} is not an e-mail address; write name@domain or *@domain")
    return entry


def parse_rules(raw: Mapping[str, Any]) -> AccessRules:
    """The role rules of an access config mapping (the `claim` key and the `[roles.*]` tables)."""
    unknown = sorted(set(raw) - set(CONFIG_KEYS))
    if unknown:
        raise AccessConfigError(f"unknown key {unknown[0]!r} in the access config; use {', '.join(CONFIG_KEYS)}")
    claim = raw.get("claim")
    if claim is not None and (not isinstance(claim, str) or not claim.strip()):
        raise AccessConfigError("claim must be the name of an OIDC claim, e.g. claim = \"groups\"")
    roles = raw.get("roles", {})
    if not isinstance(roles, Mapping):
        raise AccessConfigError("roles must be tables: [roles.viewer], [roles.analyst], [roles.auditor]")
    emails: list[tuple[str, str]] = []
    values: list[tuple[str, str]] = []
    for role, rule in roles.items():
        if role not in ROLES:
            raise AccessConfigError(f"unknown role {role!r} in [roles]; use {', '.join(ROLES)}")
        if not isinstance(rule, Mapping):
            raise AccessConfigError(f"[roles.{role}] must be a table with emails = [...] and/or claim_values = [...]")
        bad = sorted(set(rule) - set(RULE_KEYS))
        if bad:
            raise AccessConfigError(f"unknown key {bad[0]!r} in [roles.{role}]; use {', '.join(RULE_KEYS)}")
        emails += [(_email_rule(e, f"[roles.{role}] emails"), role)
                   for e in _strings(rule.get("emails", []), f"[roles.{role}] emails")]
        listed = _strings(rule.get("claim_values", []), f"[roles.{role}] claim_values")
        if listed and not claim:
            raise AccessConfigError(f"[roles.{role}] claim_values need the claim to read them from: add "
                                    f"claim = \"groups\" (or your provider's claim) at the top of the access config")
        values += [(v, role) for v in listed]
    return AccessRules(claim=claim.strip() if claim else None, emails=tuple(emails), claim_values=tuple(values))


# ----------------------------------------------------------------------------- resolving a user


def _claim_strings(value: Any) -> list[str]:
    """A claim's values as strings: a string, or a list of strings (other types are ignored)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def trusted_email(claims: Mapping[str, Any]) -> str | None:
    """The user's e-mail, lower-cased, unless the provider says it is not verified."""
    email = claims.get("email")
    verified = claims.get("email_verified", True)
    if isinstance(verified, str):
        verified = verified.strip().lower() not in ("false", "0", "no")
    if not isinstance(email, str) or "@" not in email or verified is False:
        return None
    return email.strip().lower()


def resolve_role(claims: Mapping[str, Any], rules: AccessRules) -> str | None:
    """The highest role any rule gives this user, or None."""
    found: set[str] = set()
    email = trusted_email(claims)
    if email:
        domain = "*@" + email.rpartition("@")[2]
        found |= {role for entry, role in rules.emails if entry in (email, domain)}
    if rules.claim:
        have = set(_claim_strings(claims.get(rules.claim)))
        found |= {role for value, role in rules.claim_values if value in have}
    return max(found, key=ROLES.index) if found else None


def principal_from_claims(claims: Mapping[str, Any], rules: AccessRules) -> Principal:
    """The signed-in person: display name, id for the log (e-mail or subject), and role."""
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    sub = claims.get("sub") if isinstance(claims.get("sub"), str) else None
    name = next((claims[k] for k in ("name", "preferred_username") if isinstance(claims.get(k), str) and claims[k]),
                None) or email or sub or "unknown user"
    return Principal(name=name, user_id=email or sub or name, role=resolve_role(claims, rules), mode=OIDC_MODE)


def local_principal(user: str) -> Principal:
    """The user of local mode (no sign-in configured): the server's own user, with every permission."""
    return Principal(name=f"{user} (local)", user_id=f"local:{user}", role=LOCAL_ROLE, mode=LOCAL_MODE)


# ----------------------------------------------------------------------------- messages


def not_permitted_message(principal: Principal, what: str, permissions: Iterable[str]) -> str:
    """One line for a page or control this person may not use."""
    missing = [p for p in permissions if not principal.can(p)]
    role = max((first_role(p) for p in missing), key=ROLES.index) if missing else principal.role
    return (f"Not permitted: {what} needs the {role} role, and you are signed in as {principal.name} "
            f"({principal.role or 'no role'}). Ask an admin if you need it.")


def no_role_message(principal: Principal) -> str:
    """One line for a signed-in person with no role."""
    return (f"You are signed in as {principal.name} ({principal.user_id}), but you have no role in fairwatch yet: "
            f"ask an admin to give you one (viewer, analyst or auditor). Until then there is nothing to show.")


# ----------------------------------------------------------------------------- what a viewer sees


@dataclass(frozen=True)
class Withheld:
    """What was withheld from a snapshot for a role without `small_cells`."""

    k: int
    groups: tuple[str, ...] = ()
    metric_cells: int = 0
    findings: int = 0

    def caption(self) -> str:
        """One line for the page ('' when nothing was withheld)."""
        parts = []
        if self.groups:
            parts.append(f"{len(self.groups)} group(s)")
        if self.metric_cells:
            parts.append(f"{self.metric_cells} rate(s)")
        if self.findings:
            parts.append(f"{self.findings} finding(s)")
        if not parts:
            return ""
        return (f"{', '.join(parts)} withheld: groups of fewer than {self.k} people, rates based on fewer than "
                f"{self.k}, and groups whose size could be worked out from them are not shown at your role "
                f"(as in exports).")


_DISPARITY_COLUMNS = ("ratio", "ratio_ci_low", "ratio_ci_high", "difference", "diff_ci_low", "diff_ci_high",
                      "p_value", "q_value")


def _large_enough(frame: Any, hidden: frozenset, k: int) -> Any:
    """Rows of a per-slice frame (`slice`, `n`) about a shown group with at least k rows."""
    if frame is None or not len(frame) or not {"slice", "n"} <= set(frame.columns):
        return frame
    keep = (frame["n"].fillna(0) >= k) & ~frame["slice"].map(slice_key).isin(hidden)
    return frame.loc[keep].reset_index(drop=True)


def visible_snapshot(snapshot: AuditSnapshot, role: str | None, k: int | None = None) -> tuple[AuditSnapshot, Withheld]:
    """The snapshot as a role may see it: unchanged with `small_cells`, else small cells withheld as in exports.

    The rules of `metrics/suppression.py`, applied to the frames the pages draw: a hidden group (fewer
    than k rows, or hidden so it cannot be recovered by subtraction) is dropped from every table; a rate
    whose denominator is below k is dropped too (an export nulls its value and its n, and a page would
    still print the n of a masked rate); a disparity to a withheld reference, a between-groups gap with a
    withheld end, and the fit test of a feature with a hidden group are dropped; so are findings and
    searched slices on fewer than k rows or about a hidden group.
    """
    import pandas as pd

    k = snapshot.spec.suppress_below if k is None else int(k)
    if allowed(role, "small_cells") or k <= 0:
        return snapshot, Withheld(k=k)
    rows = snapshot.groups.rows
    sizes = rows.drop_duplicates("group")[["slice", "n"]]
    primary, complementary = hidden_groups([{"slice": s, "n": int(n)} for s, n in zip(sizes["slice"], sizes["n"])], k)
    hidden = primary | complementary
    keys = rows["slice"].map(slice_key)
    shown = rows.loc[~keys.isin(hidden)].copy()
    small = shown["support"].fillna(0) < k
    # A disparity needs both ends: the group's own rate and the reference's.
    ref_ok = {(slice_key(s), m) for s, m, hide in zip(shown["slice"], shown["metric"], small) if not hide}
    lost = pd.Series([r is not None and (slice_key(r), m) not in ref_ok
                      for r, m in zip(shown["reference"], shown["metric"])], index=shown.index, dtype=bool)
    lost &= shown["verdict"] != "reference"
    shown.loc[lost, list(_DISPARITY_COLUMNS)] = float("nan")
    shown.loc[lost & (shown["verdict"] != "descriptive"), "verdict"] = "insufficient_data"
    hidden_labels = set(rows.loc[keys.isin(hidden), "group"])
    masked_labels = {(g, m) for g, m, hide in zip(shown["group"], shown["metric"], small) if hide}
    shown = shown.loc[~small]
    summary = snapshot.groups.summary
    if len(summary):
        keep = [not ({a, b} & hidden_labels or (a, m) in masked_labels or (b, m) in masked_labels)
                for a, b, m in zip(summary["min_group"], summary["max_group"], summary["metric"])]
        summary = summary.loc[keep].reset_index(drop=True)
    rep = snapshot.representation
    if len(rep):
        rep = rep.loc[~rep["slice"].map(slice_key).isin(hidden)].reset_index(drop=True)
    tests = snapshot.representation_tests
    hidden_features = {key[0][0] for key in hidden if len(key) == 1}
    if len(tests) and "feature" in tests:
        tests = tests.loc[~tests["feature"].isin(hidden_features)].reset_index(drop=True)
    groups = replace(snapshot.groups, rows=shown.reset_index(drop=True), summary=summary)
    findings, dropped = snapshot.findings, 0
    if findings is not None:
        findings = tuple(f for f in findings if f.n >= k and slice_key(f.slice) not in hidden)
        dropped = len(snapshot.findings) - len(findings)
    slices = snapshot.slices and replace(snapshot.slices, rows=_large_enough(snapshot.slices.rows, hidden, k))
    quality = snapshot.quality and replace(snapshot.quality, rows=_large_enough(snapshot.quality.rows, hidden, k))
    out = replace(snapshot, groups=groups, representation=rep, representation_tests=tests, findings=findings,
                  slices=slices, quality=quality, task_result=_visible_task(snapshot.task_result, hidden, k))
    return out, Withheld(k=k, groups=tuple(sorted(hidden_labels)), metric_cells=len(masked_labels), findings=dropped)


def _visible_task(result: Any, hidden: frozenset, k: int) -> Any:
    """A regression or multiclass audit's tables without hidden groups and without counts below k (as in exports)."""
    if result is None:
        return None
    changes = {}
    for name in ("confusion", "histograms", "distribution_gaps"):
        frame = getattr(result, name, None)
        if frame is not None and len(frame):
            keep = ~frame["slice"].map(lambda s: slice_key(s) in hidden) & (frame["n"] >= k)
            changes[name] = frame.loc[keep].reset_index(drop=True)
    return replace(result, **changes)


def visible_rates(rates: Any, role: str | None, k: int, groups: Iterable[str]) -> Any:
    """Per-group rates (`group`, `support`: the threshold explorer's curves) as a role may see them.

    Unchanged with `small_cells`; else only the groups of the role's snapshot (`groups`), and no rate
    based on fewer than k rows, as `visible_snapshot` does for the audit's own rates.
    """
    if allowed(role, "small_cells") or k <= 0 or not len(rates):
        return rates
    keep = rates["group"].isin(set(groups)) & (rates["support"].fillna(0) >= k)
    return rates.loc[keep].reset_index(drop=True)
