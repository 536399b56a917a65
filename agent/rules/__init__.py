"""The platform's rules, applied at the meter: daily volumes and report rates, anomalies, permits,
the meter archive.

A provincial platform judges every abstraction site by a short list: no data, a daily volume stuck
at zero, abnormally large or negative volumes, a report rate below target, a meter past its
calibration, an intake above its permit or plan. These modules apply the same rules on the gateway,
the same day, so the technician and the platform learn of a problem from the site itself.

Everything here is pure: readings, summaries and times go in, summaries and events come out. No
I/O, no clock, no asyncio; the agent (agent/rulebook.py) feeds them from the store at run time, the
``report`` command from the store alone, and the tests from scenario replays.

- ``calendar``: local days, months and quarters as UTC millisecond ranges.
- ``daily``: one meter's day: totalizer start and end, volume, flow statistics, slots and report rate.
- ``conditions``: conditions raised once when they start and cleared once, under a stable id.
- ``anomalies``: volume_zero, volume_large, volume_negative, no_data, report_rate_low, clock_drift.
- ``permits``: intakes' year-to-date volume against permit and plan, with a projection; expiry.
- ``archive``: the meter archive and calibration dates.
"""
