"""Scenario files: a timeline of faults and expectations, run against the simulator or the emulator."""
