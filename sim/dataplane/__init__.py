"""Dataplane pieces the kernel may lack here: GRE, 802.1Q, capability detection."""
