"""The one error type of the HTTP service: a message for the user and the 4xx status it is answered with."""
from __future__ import annotations

from reidkit.errors import ReidkitError


class ApiError(ReidkitError, ValueError):
    """Answered as {"error": message} with `status` (4xx); raised for requests the service cannot serve."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
