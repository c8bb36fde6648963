"""Probes that answer the questions asked before a maintenance window: MTU, MSS, failover."""
