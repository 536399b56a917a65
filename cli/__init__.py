"""The ``meterlink`` command: its argument tree (main.py), ``meterlink verify`` and the demo.

It sits on top of ``agent`` and ``sim`` and imports each command's code only when that command
runs, so ``meterlink run`` loads the agent and nothing else (tests/packaging/test_agent_modules.py).
"""
