"""Scenario replays: weeks of a simulated site, run through the agent's own rules at accelerated time
and compared with the events the scenario says they must raise.

A launcher of the agent's parts, like the demo, so it sits beside the command line, above ``agent``
and ``sim``: ``scenario`` reads a scenario file, ``readings`` makes the readings its meters give,
``run`` replays them (``python -m meterlink.replay FILE.toml``); ``scenarios/`` holds examples.
"""
