"""Domain exceptions, all of them: each message says what is wrong and how to fix it, on one line.

The modules that raise them import them from here (and so still offer their names to importers).
"""

import re

# Settings a message can tell the user to fix, as the CLI spells them and as the app labels them. A message
# names one with the placeholder "{field}"; `str(exc)` is the CLI's wording, `in_app()` the dashboard's.
FIELDS: dict[str, tuple[str, str]] = {
    "label": ("--label COL", "the Label field on the Data sources page"),
    "positive_label": ("--positive-label", "the field \"Label values that count as positive\" on the Data sources page"),
    "positive_prediction": ("--positive-prediction", "[columns] positive_prediction in the saved fairwatch.toml"),
    "decision": ("--prediction COL, or --score COL --threshold T",
                 "the Prediction field, or the Score and Threshold fields, on the Data sources page"),
    "sensitive": ("--sensitive A,B", "the Sensitive features field on the Data sources page"),
    "time": ("--time COL", "the Time field on the Data sources page"),
    "reference": ("--reference FEATURE=VALUE (or [reference] in fairwatch.toml)",
                  "the Reference group choice on the Data sources page"),
    "table": ("--table (or [source] table)", "the table choice on the Data sources page"),
}

# A message may name the task that fits the data ("{task=multiclass}"): a flag in a terminal, a choice in the app.
TASK_WORDS = ("--task {task}", "the task \"{task}\" on the Data sources page")
_TASK_TERM = re.compile(r"\{task=(binary|regression|multiclass)\}")


class FairwatchError(Exception):
    """Base of every error a user can act on; the CLI prints it and exits 2, the app shows st.error."""

    def __init__(self, message: str, field: str | None = None) -> None:
        # One line, always: a message is shown in a terminal and in a browser banner.
        self.template = " ".join(str(message).split())
        self.field = field if field in FIELDS else None
        super().__init__(self._phrase(0))

    def __reduce__(self):
        """Pickle with the template and field (a worker process's error keeps both wordings)."""
        return (self.__class__, (self.template, self.field))

    def _phrase(self, where: int) -> str:
        """The message with its field (and any `{task=NAME}`) named for the CLI (0) or the app (1)."""
        text = self.template.replace("{field}", FIELDS[self.field][where]) if self.field else self.template
        return _TASK_TERM.sub(lambda m: TASK_WORDS[where].format(task=m.group(1)), text)

    def in_app(self) -> str:
        """The message as the dashboard shows it: fields named as the app labels them, not as CLI flags."""
        return self._phrase(1)


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
