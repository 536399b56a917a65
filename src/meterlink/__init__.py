"""meterlink: the edge agent for water-abstraction sites.

The code lives in layers, each a top-level folder of the repository and a subpackage here, each
importing only the layers below it: ``cli`` (the ``meterlink`` command and the demo) and ``replay``
(scenario replays through the agent's rules) on top; ``agent`` (config, scheduling, store, keys,
uplinks) and ``sim`` (simulated meters and platform), which do not import each other;
``drivers`` (one kind of meter over one transport); ``protocols`` (pure codecs) and ``wire`` (the
signed messages the platform receives) at the bottom.
"""

__version__ = "0.1.0"
