"""``ncli align --method candy``: align sessions into a shared latent with shared dynamics.

The methods live in :mod:`ncli.methods.align` (``candy``: per-session
encoders, rank-contrastive on a behaviour, shared linear dynamics). Writes
``sessions/<sid>/latents/<method>`` (T, dim) float32 (NaN rows for invalid
bins) and ``models/<method>`` with the metrics in its attributes; with
``--control`` the same fit on shuffled labels is added
(``latents/candy_control``, ``models/candy_control``, metrics ``control_*``).
"""

from __future__ import annotations

from ncli.commands._io import open_input, write_job
from ncli.commands._options import Debug, Device, InputStore, NoCache, Output, Overwrite, Quiet, Seed, choice
from ncli.commands._runtime import ncli_command
from ncli.commands._methods import Plan, method_command
from ncli.methods.align._base import AlignRun


@ncli_command("align")
@method_command("align", default="candy")
def align(
    store: InputStore = None,
    seed: Seed = 0,
    device: Device = "cpu",
    output: Output = None,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
    *,
    plan: Plan,
) -> None:
    """Align several sessions into a shared latent (CANDY) and write latents, model and metrics.

    Output layer: sessions/<sid>/latents/candy (T, dim), models/candy (attrs.metrics).
    A summary goes to stderr; stdout is the output location.
    """
    choice(device, ["cpu", "cuda", "auto"], "--device")
    method = plan.build()
    method.check()
    src = open_input(store)
    job = method.job(AlignRun(src, src.sessions(), seed=seed, device=device))
    write_job("align", src, job, output=output, overwrite=overwrite, no_cache=no_cache)
