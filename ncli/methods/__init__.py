"""Method adapters, one module per (command, method), registered in :mod:`ncli.methods.registry`.

Layout: ``ncli/methods/<command>/<method>.py`` (plus shared helpers of a
command in ``ncli/methods/<command>/_base.py``), the evaluation harness
(:mod:`ncli.methods.harness`) and the one result writer
(:mod:`ncli.methods.results`). Methods depend on formats, models,
simulators and core, never on commands or the CLI.
"""
