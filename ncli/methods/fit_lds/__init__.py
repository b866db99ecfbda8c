"""``ncli fit-lds`` methods: ssid (subspace identification only) and em (EM started from it).

Imported in this order so ``--method`` lists ssid, em (the default is em).
"""

from ncli.methods.fit_lds import ssid, em  # noqa: F401  (registers them, in this order)
