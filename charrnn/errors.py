"""The project's own error types. The CLI prints them as one line and exits with `exit_code`."""


class CharrnnError(Exception):
    """A problem the user can fix (bad file, bad checkpoint, ...): exit status 1."""

    exit_code = 1


class UsageError(CharrnnError):
    """A bad option value or a contradiction between options: exit status 2."""

    exit_code = 2


class CorpusError(CharrnnError):
    """A corpus that cannot be read or used."""


class CheckpointError(CharrnnError):
    """A checkpoint that is missing, damaged, of another format, or does not fit."""


class ResourceError(CharrnnError):
    """Not enough memory, disk space or another resource for what was asked."""


class CharrnnWarning(UserWarning):
    """Something the user should know that does not stop the command (shown as one line)."""
