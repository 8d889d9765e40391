"""The error type for bad data, so the CLI can report it without a traceback, and its warning."""


class DataError(RuntimeError):
    """A problem with the user's data: a missing folder, an unreadable image, a bad download."""


class DataWarning(UserWarning):
    """Something about the user's data worth saying once but not worth stopping for (upscaled images)."""
