"""Incident packs: well-known CNI incidents replayed on a real lab against the customer's config.

Each pack (``topologies/incidents/*.yml``) names a topology, one registered incident kind with its
parameters, and states what a correct config does; ``cnilab incident FILE [--customer-config C]``
runs it and exits 0 when the config behaves that way, 1 with the cause (and the fix) otherwise, 2 on
bad input. Kinds register themselves in :data:`sim.incidents.kinds.KINDS`; a pack may also name a
scenario (``simulate:``) in which the discrete-event simulator predicts the same event, where the
simulator can model it (it has no router policies, so leaks and max-prefix are emulator-only).
"""
