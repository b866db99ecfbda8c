"""The methods of ``ncli decode``, one module each, registered in this order (the order of ``--method``'s choices).

``ridge``, ``kalman`` (:mod:`._base` holds their shared loader and learner),
``gru``, ``poyo``, ``possm`` (:mod:`._neural`), and ``probe``, the unit-label
probe that ``--target units/COLUMN`` selects. All but the probe are evaluated
by :mod:`ncli.methods.harness`'s regression path; the probe by its
classification path.
"""

from ncli.methods.decode import ridge, kalman, gru, poyo, possm, probe  # noqa: F401  (registration order)
