"""ncli: composable command-line tools for neural population data.

Every subcommand reads an ncli store (a Zarr v3 group, see ``docs/store.md``),
runs one focused model and writes a new store layer, so steps chain in shell
pipes: ``ncli convert s.nwb | ncli embed --method pca | ncli info``.
"""

__version__ = "0.1.0"
