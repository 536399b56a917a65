"""Scenario files shipped for replays (replay/scenario.py reads them): a site's weeks, and the
events the platform's rules must raise in them."""
