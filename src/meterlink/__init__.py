"""meterlink: the edge agent for water-abstraction sites.

The code lives in four layers, each a top-level folder of the repository and a subpackage here:
``protocols`` (pure codecs), ``drivers`` (one kind of meter over one transport), ``agent``
(config, scheduling, store, signing, uplinks, CLI) and ``sim`` (simulated meters and platform).
"""

__version__ = "0.1.0"
