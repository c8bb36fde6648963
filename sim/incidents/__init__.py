"""Incident packs: well-known CNI incidents replayed on a real lab against the customer's config.

Each pack (``topologies/incidents/*.yml``) names a topology, one registered incident kind with its
parameters, and states what a correct config does; ``cnilab incident FILE [--customer-config C]``
runs it and exits 0 when the config behaves that way, 1 with the cause (and the fix) otherwise, 2 on
bad input. Kinds register themselves in :data:`cnilab.sim.incidents.kinds.KINDS`; each has a simulator
counterpart in :data:`cnilab.sim.incidents.simulate.SIM_KINDS` (``cnilab incident FILE --sim``) giving the
same verdict and cause: policy incidents from the customer's FRR config read as a policy model,
timing incidents from the pack's ``simulate:`` scenario.
"""
