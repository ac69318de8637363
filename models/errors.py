"""The one user-error type.

Every error a user can cause (an unknown model name, an empty or too long text, a setting over a
bound, a model that cannot load here) is a `UserError`, whose message says what to change. The
UI shows exactly these as messages; anything else is a bug, logged with its traceback and shown
as a generic failure. It subclasses `ValueError` so callers that catch bad values keep working.
"""

from __future__ import annotations


class UserError(ValueError):
    """A request that cannot be served as asked; the message says what to change."""
