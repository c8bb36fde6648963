"""Exports of a lab plan to other tools (containerlab), and the container images they run."""
