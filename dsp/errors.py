"""Errors that carry a message fit for a user (no traceback needed)."""


class UserError(Exception):
    """Bad input, a missing file, an unavailable device or extra: printed as one line."""
