"""ncli convert (placeholder until implemented)."""

from ncli.commands._common import ncli_command


@ncli_command("convert")
def convert() -> None:
    """Not implemented yet."""
    raise NotImplementedError
