"""The ``ncli`` command line: registers every subcommand on one Typer app."""

from __future__ import annotations

import typer

from ncli import __version__

app = typer.Typer(
    name="ncli",
    help="Composable command-line tools for neural population data. Each command reads an ncli "
    "store (Zarr v3), runs one model and prints the location of the store it writes, so steps "
    "chain in pipes: ncli convert s.nwb | ncli embed --method pca | ncli info",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ncli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """ncli: neural population data in composable steps."""


def _register() -> None:
    from ncli.commands import convert, decode, embed, export, info, simulate

    app.command("convert")(convert.convert)
    app.command("info")(info.info)
    app.command("export")(export.export)
    app.command("embed")(embed.embed)
    app.command("decode")(decode.decode)
    app.add_typer(simulate.app, name="simulate")


_register()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
