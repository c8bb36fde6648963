"""``cnilab verify``: does a change to the customer's router config do what is declared, and nothing else?

A lab is booted with each config; once it has converged an :class:`~cnilab.sim.verify.model.Observation` is
recorded (sessions and timers, every prefix the customer announces to each neighbor with its
attributes as the receiver saw them, what the customer installs, BFD, MTU/MSS, the failover result,
leaks toward the transit and the peer, max-prefix). Two observations are compared
(:mod:`cnilab.sim.verify.diff`) into sentences such as ``198.51.100.0/24 to ewr1 gains prepend 65010 65010``;
the ``--expect`` file declares the intended ones (:mod:`cnilab.sim.verify.expect`), and anything else fails
the verification.

Modules: ``model`` (pydantic observation), ``observe`` (convergence-aware recording on a running lab),
``failover`` (the link in use pulled, reduced to what is compared), ``diff``, ``expect``, ``render``
(console, Markdown, JUnit), ``runner`` (labs up, observe, down), ``steps`` (``cnilab test``'s no-leaks
and max-prefix steps), ``customer`` (what the customer's daemon reports).
"""
