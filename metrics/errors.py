"""Domain exceptions: each message says what is wrong and how to fix it, on one line."""


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
