"""ncli decode (placeholder until implemented)."""

from ncli.commands._common import ncli_command


@ncli_command("decode")
def decode() -> None:
    """Not implemented yet."""
    raise NotImplementedError
