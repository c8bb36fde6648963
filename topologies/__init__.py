"""Shipped topologies, scenarios, incident packs and JSON schemas: package data of ``cnilab.topologies``."""
