"""User-facing errors: the CLI prints them as one line and exits non-zero."""


class DisbenchError(Exception):
    """An error caused by the user's input (a name, a file, an option).

    The message must say what was wrong and what was expected; the CLI prints
    it without a traceback.
    """


class UnknownNameError(DisbenchError, KeyError):
    """A registry was asked for a name it does not know."""

    def __str__(self):  # KeyError would quote the message
        return self.args[0] if self.args else ""


class DuplicateNameError(DisbenchError):
    """Two plugins registered the same name in one registry."""


class InvalidNameError(DisbenchError, ValueError):
    """A plugin tried to register a name that cannot be used (names become folder names)."""


class TrainingDiverged(DisbenchError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""
