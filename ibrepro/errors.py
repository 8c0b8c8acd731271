"""The one exception type for errors a user can cause."""


class UserError(Exception):
    """A problem with the user's input (config, file, name).

    The CLI prints its message on one line and exits non-zero; no traceback.
    """
