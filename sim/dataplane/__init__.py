"""The lab's dataplane pieces that the kernel may lack: GRE (kernel device or userspace endpoint).

Callers use :mod:`cnilab.sim.dataplane.gre` (``gre_mode``, ``create_kernel_gre``, ``start_userspace_gre``,
``gre_counters``); which implementation runs is recorded in the lab state as ``mechanisms["gre"]``.
"""
