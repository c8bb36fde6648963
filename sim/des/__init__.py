"""Discrete-event simulator of a CNI lab: links, BGP and BFD state machines, traffic; virtual time."""
