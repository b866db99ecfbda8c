"""ncli info (placeholder until implemented)."""

from ncli.commands._common import ncli_command


@ncli_command("info")
def info() -> None:
    """Not implemented yet."""
    raise NotImplementedError
