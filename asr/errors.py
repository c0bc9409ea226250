"""User-facing errors: one line naming the file, field or value, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar


class UserError(Exception):
    """A problem with the user's input (a file, a manifest line, a config value)."""


F = TypeVar("F", bound=Callable[..., object])


def exit_on_user_error(main: F) -> F:
    """Wrap a console entry point: a ``UserError`` becomes ``error: ...`` on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]
