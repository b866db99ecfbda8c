"""ncli export (placeholder until implemented)."""

from ncli.commands._common import ncli_command


@ncli_command("export")
def export() -> None:
    """Not implemented yet."""
    raise NotImplementedError
