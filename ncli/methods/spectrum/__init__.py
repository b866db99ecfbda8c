"""``ncli spectrum``: the two analyses it runs, network spectra and spectra of fitted dynamics.

Not registered as methods: spectrum's ``--method`` chooses an eigensolver
(auto, dense, arpack, none) for one and the same analysis, and every option
applies to every solver, so there is no per-method option set for the
registry to check; the two analyses are chosen by the arguments (network
options vs ``STORE --from``), not by ``--method``. Each module builds the
:class:`~ncli.methods.results.Job` the command writes.
"""
