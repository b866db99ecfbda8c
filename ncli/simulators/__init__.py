"""Ground-truth generators: synthetic recordings with known structure, one module per setting.

Each simulator is an estimator (:class:`ncli.models.base.Estimator`) whose
"learned" attributes are the drawn ground truth: ``init_params()`` draws it
from the seed, ``sample(...)`` simulates sessions as plain arrays, and
``to_group`` saves the truth (``models/truth`` of ``ncli simulate``) under a
stable model id (``ncli/sim-lds@1``, ... see :mod:`ncli.models.ids`).

Layering (docs/architecture.md): simulators import models and core only;
they never open a file (the command writes the store).

=========================  ==========================================  =================
class                      setting                                     module
=========================  ==========================================  =================
PoissonLDS                 Poisson LDS with a velocity readout         :mod:`.lds`
CandySimulator             one LDS, several nonlinear populations      :mod:`.candy`
NuclrSimulator             typed neurons identifiable by context       :mod:`.nuclr`
ReachSimulator             cosine-tuned units leading an OU velocity   :mod:`.reach`
CrossDaySimulator          one array over days, planted instabilities  :mod:`.crossday`
AreasSimulator             multi-area chaotic RNN, partial sessions    :mod:`.areas`
ConceptChunkSimulator      planted concept patterns                    :mod:`.chunks`
SequenceChunkSimulator     a recurring chunk of population states      :mod:`.chunks`
=========================  ==========================================  =================

:func:`~ncli.simulators.ou.ornstein_uhlenbeck` is the one OU generator they share.
"""

from ncli.simulators.candy import CandySimulator
from ncli.simulators.crossday import CrossDaySimulator
from ncli.simulators.chunks import ConceptChunkSimulator, SequenceChunkSimulator
from ncli.simulators.lds import PoissonLDS
from ncli.simulators.nuclr import NuclrSimulator
from ncli.simulators.ou import ornstein_uhlenbeck
from ncli.simulators.reach import ReachSimulator
from ncli.simulators.session import SimulatedSession

__all__ = ["CandySimulator", "ConceptChunkSimulator", "CrossDaySimulator", "NuclrSimulator", "PoissonLDS", "ReachSimulator",
           "SequenceChunkSimulator", "SimulatedSession", "ornstein_uhlenbeck"]
