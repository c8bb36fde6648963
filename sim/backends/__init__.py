"""Backends build a LabPlan's nodes and links: network namespaces or containers."""
