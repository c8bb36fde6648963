"""Scenario reports: one pydantic model, rendered as JSON, a self-contained HTML page, or JUnit XML."""
