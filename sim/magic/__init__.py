"""Magic Transit / Magic WAN over CNI: tunnel health checks, route priorities, steering.

Pure parts (facts, the health state machine, steering) are shared by the emulator's health-check
daemon (:mod:`cnilab.sim.magic.hcd`) and the simulator (:mod:`cnilab.sim.magic.simulate`), so the two cannot
disagree on a rule; only the packets differ (real ICMP through real tunnels vs. a link model).
The lab hook is :func:`cnilab.sim.magic.lab.start_magic` (imported lazily: this package must stay
importable from the topology model).
"""
