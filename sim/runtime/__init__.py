"""The bottom layer: processes, namespaces, state directories, files and cleanup.

Nothing here imports any other part of ``sim``; every layer above may import it (see
docs/architecture.md and tests/test_layers.py).
"""
