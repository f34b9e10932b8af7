"""One exception type for everything a user can get wrong; the CLI prints it as one line."""

from __future__ import annotations


class EdgeDeployError(Exception):
    """An error the user can act on. `str(err)` is the one line shown; `exit_code` is returned."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(EdgeDeployError):
    """Bad input: a file, an option or a recipe that cannot be used (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)


class TargetError(EdgeDeployError):
    """A device could not be reached, refused us, or lacks what is needed (exit 1)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=1)


class NotYetSupported(EdgeDeployError):
    """A verb or option that exists but cannot do this yet; says so instead of pretending."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)
