"""The one error type for bad data, so the CLI can report it without a traceback."""


class DataError(RuntimeError):
    """A problem with the user's data: a missing folder, an unreadable image, a bad download."""
