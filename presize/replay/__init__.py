"""Replay: run sizing policies over real usage traces, step by step, and score them.

Loaders turn the trace folders of ``../shared/traces`` into aligned series; the simulator runs
every policy in lock-step over all series, each policy seeing only the past; metrics score the
allocations; the report renders the result as a table, JSON and an HTML page.
"""
