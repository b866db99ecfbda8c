"""ncli simulate: ground-truth generators (placeholder)."""
import typer

app = typer.Typer(help="Ground-truth generators.", no_args_is_help=True)
