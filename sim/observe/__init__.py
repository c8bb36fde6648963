"""One observer of a running lab: sessions, BFD, best paths, per-path counters and their transitions.

The scenario emulator, the dashboard, failover measurement, ``cnilab demo``, rehearsals and the
tests read a lab through these classes instead of each running its own polling loop, so "the
session went Idle at t" means the same reading everywhere.

- :mod:`cnilab.sim.observe.edge`: the edge driver's sessions, BFD and event log, one read at a time.
- :mod:`cnilab.sim.observe.routes`: where each router sends a destination (``ip route get`` in-process).
- :mod:`cnilab.sim.observe.paths`: which interfaces are paths to the other side, and samplers over them.
- :mod:`cnilab.sim.observe.counters`: interface state and counters of every node (the dashboard's links).
- :mod:`cnilab.sim.observe.ribs`: the routing picture (edge, third parties' Adj-RIB-In, the customer's
  kernel routes) in one on-demand read (``cnilab verify``'s convergence).
- :mod:`cnilab.sim.observe.observer`: :class:`LabObserver`, the background poller that records transitions.
"""
