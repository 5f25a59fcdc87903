"""Domain exceptions, all of them: each message says what is wrong and how to fix it, on one line.

The modules that raise them import them from here (and so still offer their names to importers).
"""


class FairwatchError(Exception):
    """Base of every error a user can act on; the CLI prints it and exits 2, the app shows st.error."""

    def __init__(self, message: str) -> None:
        # One line, always: a message is shown in a terminal and in a browser banner.
        super().__init__(" ".join(str(message).split()))


class SpecError(FairwatchError):
    """The audit spec (fairwatch.toml, CLI flags or the Sources page) is invalid."""


class SourceError(FairwatchError):
    """The data source cannot be opened or read."""


class DataError(FairwatchError):
    """The data is readable but cannot be audited as asked (bad values, empty, too many groups)."""


class SnapshotError(FairwatchError):
    """A snapshot cannot be written, read or trusted (exists, damaged, newer schema, tampered)."""


class AccessConfigError(FairwatchError):
    """The access config (roles, allow-lists, log) is invalid."""


class AccessLogError(AccessConfigError):
    """The access log cannot be written or read."""


class ReportError(FairwatchError):
    """The report could not be drawn (a rendering library is missing or failed)."""


class ServeError(FairwatchError):
    """The dashboard cannot be started as asked."""
