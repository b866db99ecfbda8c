"""ncli embed (placeholder until implemented)."""

from ncli.commands._common import ncli_command


@ncli_command("embed")
def embed() -> None:
    """Not implemented yet."""
    raise NotImplementedError
