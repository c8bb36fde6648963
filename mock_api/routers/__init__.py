"""One router per resource: interconnects, cnis, slots, settings, and the lab-only controls."""
