"""Sensors, schedules and automation: what keeps the lake fresh without anyone clicking."""
