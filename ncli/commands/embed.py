"""``ncli embed``: per-bin latents (PCA, FA) or per-neuron embeddings (NuCLR, features).

The methods live in :mod:`ncli.methods.embed` (one module each, registered with
their options); this command opens the input, hands it to the chosen method
and writes the layer it returns.

PCA/FA, for every session: counts -> optional square root -> optional Gaussian
smoothing (over valid bins) -> fit on valid bins -> latents for every valid
bin. Writes a layer with ``sessions/<sid>/latents/<method>`` (T, K) float32
(NaN rows for invalid bins) and ``models/<method>/<sid>``.

NuCLR trains one model on all sessions (or loads it from ``--model STORE``
for zero-shot embedding) and writes ``sessions/<sid>/neurons/nuclr`` (N, K)
and ``models/nuclr``; ``features`` writes hand-crafted per-neuron features
``sessions/<sid>/neurons/features`` (N, F).
"""

from __future__ import annotations

from ncli.commands._io import open_input, open_inputs, write_job
from ncli.commands._options import Debug, Device, InputStore, NoCache, Output, Overwrite, Quiet, Seed
from ncli.commands._runtime import ncli_command
from ncli.commands._methods import Plan, method_command
from ncli.core.errors import DataError
from ncli.methods.embed._base import EmbedRun


@ncli_command("embed")
@method_command("embed", default="pca")
def embed(
    store: InputStore = None,
    device: Device = "cpu",
    seed: Seed = 0,
    output: Output = None,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
    *,
    plan: Plan,
) -> None:
    """Per-bin latents (PCA, FA per session) or per-neuron embeddings (NuCLR, hand-crafted features).

    Output layer: sessions/<sid>/latents/<method> (T, K) and models/<method>/<sid>;
    nuclr/features: sessions/<sid>/neurons/<method> (N, K) and models/<method>
    (nuclr trains one model on all sessions, or embeds zero-shot with --model STORE).
    Prints the output store's location.
    """
    src = open_input(store)
    sessions = src.sessions()
    if not sessions:
        raise DataError("store has no sessions", src.location)
    run = EmbedRun(src, sessions, seed=seed, device=device, given=plan.given, open_store=open_input,
                   open_stores=open_inputs)
    write_job("embed", src, plan.build().job(run), output=output, overwrite=overwrite, no_cache=no_cache)
