"""Roles and permissions (metrics/privacy/roles.py): the permission table, the page table, role resolution from claims
and allow-lists, and what a viewer sees of an audit (small cells withheld exactly as in exports)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from fairwatch.metrics.privacy.roles import (PAGES, PERMISSIONS, ROLES, AccessConfigError, AccessRules, allowed, local_principal,
                           no_role_message, not_permitted_message, page_for_title, parse_rules, permissions_of,
                           principal_from_claims, required_permissions, resolve_role, visible_pages,
                           visible_snapshot)

ROOT = Path(__file__).resolve().parents[1]
RULES = parse_rules({
    "claim": "groups",
    "roles": {
        "auditor": {"emails": ["Alice@Example.org"], "claim_values": ["fairness-auditors"]},
        "analyst": {"claim_values": ["data-science"]},
        "viewer": {"emails": ["*@example.org", "carol@partner.net"], "claim_values": ["staff"]},
    },
})


# ----------------------------------------------------------------------------- the permission table


def test_each_role_sees_everything_the_one_before_it_sees():
    held = [set(permissions_of(r)) for r in ROLES]
    assert held[0] < held[1] < held[2]
    assert held[0] == {"view"}
    assert held[2] == set(PERMISSIONS)
    assert {"example_rows", "labelling", "drill_down", "small_cells"} <= held[1]
    assert not {"export", "verify", "access_log"} & held[1]
    assert permissions_of(None) == () and permissions_of("admin") == ()


def test_an_unknown_permission_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown permission 'exprot'"):
        allowed("auditor", "exprot")


def test_pages_each_role_may_open():
    titles = {r: [p.title for p in visible_pages(r)] for r in ROLES}
    assert titles["viewer"] == ["Overview", "Representation", "Performance"]
    assert titles["analyst"] == ["Overview", "Data sources", "Representation", "Performance", "Slices", "Data quality",
                                 "Trends", "Data plan"]
    assert titles["auditor"] == [p.title for p in PAGES]
    assert visible_pages(None) == ()
    assert [p.title for p in visible_pages("auditor", ["app.py"])] == ["Overview"]


def test_a_page_needs_its_own_permission_and_the_page_tables():
    assert required_permissions("Data sources", "view") == ("view", "sources")
    assert required_permissions("Access log", "access_log") == ("access_log",)
    assert required_permissions("Some new page", "example_rows") == ("example_rows",)
    assert page_for_title("Overview").file == "app.py"


def _run_page_call(path: Path) -> tuple[str | None, str | None]:
    """(title, permission keyword) of the module-level run_page(...) call of a page file."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "run_page":
            title = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            perm = next((k.value.value for k in node.keywords if k.arg == "permission"), None)
            return title, perm
    return None, None


def test_every_page_file_is_in_the_page_table_with_its_title_and_permission():
    """A page missing here is left out of the menu for everyone: add a PageAccess row to metrics/privacy/roles.py PAGES."""
    table = {p.file: p for p in PAGES}
    files = ["app.py", *sorted(f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py"))]
    for file in files:
        assert file in table, f"{file} is not in PAGES of metrics/privacy/roles.py: add PageAccess({file!r}, title, permission)"
        title, perm = _run_page_call(ROOT / file)
        assert title == table[file].title, f"{file}: run_page title {title!r} != PAGES title {table[file].title!r}"
        assert perm in (None, table[file].permission), f"{file}: permission={perm!r} != {table[file].permission!r}"
    assert len({p.title for p in PAGES}) == len(PAGES)
    assert all(p.permission in PERMISSIONS for p in PAGES)


# ----------------------------------------------------------------------------- the access config


def test_rules_are_parsed_lower_cased_and_kept_in_order():
    assert RULES.claim == "groups"
    assert ("alice@example.org", "auditor") in RULES.emails
    assert ("*@example.org", "viewer") in RULES.emails
    assert ("staff", "viewer") in RULES.claim_values
    assert parse_rules({}).empty and not RULES.empty


@pytest.mark.parametrize("raw, message", [
    ({"roles": {"admin": {"emails": ["a@b.org"]}}}, "unknown role 'admin' in [roles]; use viewer, analyst, auditor"),
    ({"role": {}}, "unknown key 'role' in the access config"),
    ({"roles": {"viewer": {"email": ["a@b.org"]}}}, "unknown key 'email' in [roles.viewer]; use emails, claim_values"),
    ({"roles": {"viewer": {"claim_values": ["staff"]}}}, "claim_values need the claim to read them from"),
    ({"roles": {"viewer": {"emails": ["not-an-email"]}}}, "is not an e-mail address"),
    ({"roles": {"viewer": {"emails": [3]}}}, "must be a list of non-empty strings"),
    ({"roles": {"viewer": ["a@b.org"]}}, "[roles.viewer] must be a table"),
    ({"claim": ""}, "claim must be the name of an OIDC claim"),
])
def test_bad_access_configs_say_how_to_fix_them_in_one_line(raw, message):
    with pytest.raises(AccessConfigError) as err:
        parse_rules(raw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- resolving a user


@pytest.mark.parametrize("claims, role", [
    ({"email": "ALICE@example.org"}, "auditor"),  # e-mail allow-list, any case
    ({"email": "dave@example.org"}, "viewer"),  # domain wildcard
    ({"email": "dave@example.org", "groups": ["data-science"]}, "analyst"),  # highest rule wins
    ({"email": "x@elsewhere.com", "groups": "fairness-auditors"}, "auditor"),  # a string claim counts as one value
    ({"email": "x@elsewhere.com", "groups": ["staff", 7, None]}, "viewer"),  # non-strings ignored
    ({"email": "x@elsewhere.com", "groups": []}, None),
    ({"email": "alice@example.org", "email_verified": False}, None),  # unverified e-mails are not trusted
    ({"email": "alice@example.org", "email_verified": "false"}, None),
    ({"email": "alice@example.org", "email_verified": True}, "auditor"),
    ({"sub": "alice@example.org"}, None),  # the subject is not an e-mail claim
    ({}, None),
])
def test_a_user_gets_the_highest_role_any_rule_gives(claims, role):
    assert resolve_role(claims, RULES) == role


def test_without_rules_nobody_has_a_role():
    assert resolve_role({"email": "alice@example.org", "groups": ["fairness-auditors"]}, AccessRules()) is None


def test_the_principal_is_named_from_the_friendliest_claim():
    p = principal_from_claims({"sub": "u1", "email": "alice@example.org", "name": "Alice Example"}, RULES)
    assert (p.name, p.user_id, p.role, p.mode) == ("Alice Example", "alice@example.org", "auditor", "oidc")
    assert principal_from_claims({"sub": "u2", "preferred_username": "bob"}, RULES).name == "bob"
    nobody = principal_from_claims({"sub": "u3"}, RULES)
    assert (nobody.name, nobody.user_id, nobody.role) == ("u3", "u3", None)
    assert p.author() == {"name": "Alice Example", "id": "alice@example.org", "role": "auditor", "signed_in": "oidc"}
    local = local_principal("ana")
    assert local.role == "auditor" and local.mode == "local" and local.can("access_log")


def test_messages_name_the_role_needed_and_how_to_get_it():
    viewer = principal_from_claims({"email": "dave@example.org", "name": "Dave"}, RULES)
    text = not_permitted_message(viewer, "the Access log page", ("access_log",))
    assert text == ("Not permitted: the Access log page needs the auditor role, and you are signed in as Dave "
                    "(viewer). Ask an admin if you need it.")
    nobody = principal_from_claims({"email": "x@elsewhere.com", "name": "X"}, RULES)
    assert "ask an admin" in no_role_message(nobody) and "x@elsewhere.com" in no_role_message(nobody)


# ----------------------------------------------------------------------------- what a viewer sees


@pytest.fixture(scope="module")
def small_audit(tmp_path_factory):
    """A 3,000-row demo audit: three sensitive features, many intersections smaller than k = 10."""
    from fairwatch.connectors.audit import run_audit
    from fairwatch.connectors.demo import DEMO_CONFIG, write_demo
    from fairwatch.connectors.source import open_source
    from fairwatch.metrics.audit.spec import RowFilter, SourceSpec, parse_spec

    path = tmp_path_factory.mktemp("roles") / "demo.duckdb"
    write_demo(path, rows=3000)
    spec = parse_spec(DEMO_CONFIG)
    spec = spec.with_source(SourceSpec(**{**spec.to_dict()["source"], "path": str(path)}))
    src = open_source(spec.source)
    try:
        return run_audit(spec, RowFilter(), src)
    finally:
        src.con.close()


def test_analysts_and_auditors_see_the_snapshot_unchanged(small_audit):
    for role in ("analyst", "auditor"):
        shown, withheld = visible_snapshot(small_audit, role)
        assert shown is small_audit and withheld.caption() == ""


def test_a_viewer_sees_exactly_the_groups_an_export_shows(small_audit):
    from fairwatch.metrics.privacy.suppression import slice_key, suppress_document

    k = small_audit.spec.suppress_below
    doc, summary = suppress_document(small_audit.to_dict(), k)
    exported_hidden = {slice_key(g["slice"]) for g in doc["groups"] if g["suppressed"]}
    shown, withheld = visible_snapshot(small_audit, "viewer")
    rows = shown.groups.rows
    assert summary.groups_suppressed > 0 and len(withheld.groups) == summary.groups_suppressed
    assert not set(rows["slice"].map(slice_key)) & exported_hidden
    assert set(small_audit.groups.rows["slice"].map(slice_key)) - exported_hidden == set(rows["slice"].map(slice_key))
    assert (rows["n"] >= k).all()
    small_rate = rows["support"].fillna(0) < k
    assert rows.loc[small_rate, "value"].isna().all() and rows.loc[small_rate, "masked"].all()
    rep = shown.representation
    assert not set(rep["slice"].map(slice_key)) & exported_hidden and (rep["n"] >= k).all()
    hidden_features = {key[0][0] for key in exported_hidden if len(key) == 1}
    assert hidden_features and not set(shown.representation_tests["feature"]) & hidden_features
    assert not set(shown.groups.summary["min_group"]) & set(withheld.groups)
    assert "withheld" in withheld.caption() and f"fewer than {k}" in withheld.caption()
    assert len(small_audit.groups.rows) > len(rows)  # the input is untouched


def test_the_pages_views_draw_a_viewers_snapshot(small_audit):
    """The tables and charts the pages build from a snapshot work on the viewer's copy too."""
    from fairwatch.metrics.policy.overview import feature_verdicts, worst_disparities
    from fairwatch.metrics.presentation.views import (disparity_points, intersection_cells, metric_table, rate_points,
                               representation_table)

    shown, _ = visible_snapshot(small_audit, "viewer")
    rows, rep = shown.groups.rows, shown.representation
    features = list(shown.spec.sensitive)
    for grouping in rows["grouping"].unique():
        # Exactly the groups the viewer sees, none of the withheld ones, each once.
        table = metric_table(rows, grouping, ["selection_rate"])
        visible = rows[(rows["grouping"] == grouping) & (rows["metric"] == "selection_rate")]
        assert sorted(table["Group"]) == sorted(visible["group"])
        assert (table["Group rows"] >= shown.spec.suppress_below).all()
        rate_points(rows, grouping, ["selection_rate"])
        disparity_points(rows, grouping, ["selection_rate"])
    for grouping in rep["grouping"].unique():
        assert np.issubdtype(representation_table(rep, grouping)["n"].dtype, np.integer)
    intersection_cells(rep, features[0], features[1], shown.spec.policy.min_support)
    feature_verdicts(rows, features)
    worst_disparities(rows, features, limit=6)


def test_a_viewer_sees_no_rate_on_fewer_than_k_rows_and_not_its_n_either(small_audit):
    """An export nulls a small rate's value and its n; a viewer's copy leaves the rate out (its n would show)."""
    k = small_audit.spec.suppress_below
    rows = small_audit.groups.rows
    shown_groups = set(visible_snapshot(small_audit, "viewer")[0].groups.rows["group"])
    small = rows[(rows["support"].fillna(0) < k) & rows["group"].isin(shown_groups)]
    assert len(small), "the fixture should have a shown group with a small rate"
    shown, withheld = visible_snapshot(small_audit, "viewer")
    assert (shown.groups.rows["support"] >= k).all()
    assert withheld.metric_cells == len(small) and f"{len(small)} rate(s)" in withheld.caption()


def test_a_viewer_sees_no_finding_on_a_small_or_hidden_group(small_audit):
    from dataclasses import replace

    from fairwatch.metrics.discovery.findings import Finding

    def finding(id_, slice_, n):
        return Finding(id=id_, slice=slice_, metric="error_rate", n=n, value=0.5, ci_low=0.4, ci_high=0.6,
                       complement_value=0.2, difference=0.3, p_value=0.001, q_value=0.01, score=1.0,
                       need="model", additional_rows=None, message="")

    k = small_audit.spec.suppress_below
    sizes = small_audit.groups.rows.drop_duplicates("group").sort_values("n")
    tiny, large = sizes.iloc[0], sizes.iloc[-1]
    assert tiny["n"] < k <= large["n"]
    found = (finding("large", large["slice"], int(large["n"])), finding("few", (("channel", "x"),), k - 1),
             finding("hidden", tiny["slice"], 500))
    audit = replace(small_audit, findings=found)
    shown, withheld = visible_snapshot(audit, "viewer")
    assert [f.id for f in shown.findings] == ["large"] and withheld.findings == 2
    assert "2 finding(s)" in withheld.caption()
    assert visible_snapshot(audit, "analyst")[0].findings == found


def test_threshold_curves_of_a_viewer_keep_the_shown_groups_and_rates_on_k_rows_or_more():
    import pandas as pd

    from fairwatch.metrics.privacy.roles import visible_rates

    curves = pd.DataFrame({"group": ["sex=f", "sex=f", "sex=x", "race=a"], "support": [500, 7, 500, 50],
                           "value": [0.1, 0.2, 0.3, 0.4]})
    assert visible_rates(curves, "analyst", 10, ["sex=f"]) is curves
    kept = visible_rates(curves, "viewer", 10, ["sex=f", "race=a"])
    assert list(zip(kept["group"], kept["support"])) == [("sex=f", 500), ("race=a", 50)]


def test_a_viewers_heatmap_says_withheld_where_a_group_was_left_out():
    import pandas as pd

    from fairwatch.metrics.presentation.views import intersection_cells

    rep = pd.DataFrame({"grouping": ["sex", "sex", "race", "race", "sex × race", "sex × race", "sex × race"],
                        "slice": [(("sex", "f"),), (("sex", "m"),), (("race", "a"),), (("race", "b"),),
                                  (("sex", "f"), ("race", "a")), (("sex", "m"), ("race", "a")),
                                  (("sex", "m"), ("race", "b"))],
                        "n": [60, 80, 100, 40, 60, 40, 40]})
    full = intersection_cells(rep, "sex", "race", 30)
    assert full.set_index(["sex", "race"]).loc[("f", "b"), "label"] == "0 (small)"  # a real zero
    viewer = intersection_cells(rep, "sex", "race", 30, complete=False).set_index(["sex", "race"])
    assert viewer.loc[("f", "b"), "label"] == "withheld" and pd.isna(viewer.loc[("f", "b"), "n"])
    assert viewer.loc[("m", "a"), "label"] == "40"
