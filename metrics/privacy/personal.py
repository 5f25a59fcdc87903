"""Which columns look like direct identifiers of a person (names, dates of birth, e-mail, phone, free-text ids).

Such columns are left out of example rows and labelling queues unless the analyst lists them in
`[privacy] show_columns`, and are never guessed as slicing features. The rule reads a column's name
and type, and where a few values are at hand (`examples`) it checks them: a column named `phone`
whose values are "yes"/"none" (German credit) holds no phone number, so it is not hidden for that.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Whole column names (lower-cased, separators removed) that name a person.
_NAME_COLUMNS = frozenset({
    "name", "first", "last", "firstname", "lastname", "fullname", "surname", "givenname", "familyname",
    "middlename", "forename", "personname", "customername", "clientname", "applicantname", "patientname",
    "defendantname", "username", "nickname",
})
_BIRTH_COLUMNS = frozenset({"dob", "dateofbirth", "birthdate", "birthday", "birthdt", "bdate", "born"})
_EMAIL_TOKENS = frozenset({"email", "mail", "emailaddress"})
_PHONE_TOKENS = frozenset({"phone", "telephone", "tel", "mobile", "cellphone", "phonenumber", "fax"})
# Document and account numbers: each names one person on its own.
_ID_COLUMNS = frozenset({
    "ssn", "socialsecurity", "socialsecuritynumber", "passport", "passportnumber", "nationalid", "taxid",
    "iban", "accountnumber", "creditcard", "cardnumber", "licensenumber", "driverslicense", "casenumber",
    "address", "streetaddress", "street", "ipaddress", "ip",
})
_EMAIL_VALUE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PHONE_VALUE = re.compile(r"^\+?[\d\s().\-/]{7,}$")

KINDS = {"name": "a person's name", "birth": "a date of birth", "email": "an e-mail address",
         "phone": "a phone number", "document": "a document, case or account number"}


def _squash(name: str) -> str:
    """The name lower-cased without separators: 'First_Name' and 'first name' become 'firstname'."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _tokens(name: str) -> set[str]:
    """The name's parts, split at separators and camelCase, lower-cased."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name)
    return {p for p in re.split(r"[^a-z0-9]+", spaced.lower()) if p}


def _holds(examples: Sequence[str] | None, pattern: re.Pattern) -> bool:
    """True when no values were given (judge by name) or some given value has the pattern's form."""
    values = [str(e).strip() for e in (examples or ()) if str(e).strip()]
    return not values or any(pattern.match(v) for v in values)


def personal_data_kind(name: str, examples: Sequence[str] | None = None) -> str | None:
    """What direct identifier the column looks like ('name', 'birth', 'email', 'phone', 'document'), or None."""
    squashed, tokens = _squash(name), _tokens(name)
    if squashed in _NAME_COLUMNS or squashed.endswith(("firstname", "lastname", "fullname", "surname")):
        return "name"
    if squashed in _BIRTH_COLUMNS or {"dob", "birth", "birthdate", "birthday"} & tokens:
        return "birth"
    if (squashed in _EMAIL_TOKENS or _EMAIL_TOKENS & tokens) and _holds(examples, _EMAIL_VALUE):
        return "email"
    if examples and any(_EMAIL_VALUE.match(str(e).strip()) for e in examples):
        return "email"
    if (squashed in _PHONE_TOKENS or _PHONE_TOKENS & tokens) and _holds(examples, _PHONE_VALUE):
        return "phone"
    if squashed in _ID_COLUMNS or squashed.endswith(("casenumber", "ssn", "passportnumber", "accountnumber")):
        return "document"
    return None


def personal_data_reason(name: str, examples: Sequence[str] | None = None) -> str | None:
    """Why the column counts as personal data, in words, or None."""
    kind = personal_data_kind(name, examples)
    return None if kind is None else f"personal data: looks like {KINDS[kind]}"


def shown_columns(names: Sequence[str], hide: Sequence[str], show: Sequence[str],
                  examples: dict[str, Sequence[str]] | None = None) -> list[str]:
    """The columns a person may see: not hidden, and not personal data unless the analyst chose to show it.

    Names compare case-insensitively (identifiers are case-insensitive in every engine used).
    `hide` wins over `show`: a column listed in both stays hidden.
    """
    hidden = {h.lower() for h in hide}
    shown = {s.lower() for s in show}
    examples = examples or {}
    return [c for c in names if c.lower() not in hidden
            and (c.lower() in shown or personal_data_kind(c, examples.get(c)) is None)]
