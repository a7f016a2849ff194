"""`charrnn sample` (placeholder until its module lands)."""

from charrnn.commands import fail


def command() -> None:
    """Not built yet."""
    raise fail("this command is not built yet")
