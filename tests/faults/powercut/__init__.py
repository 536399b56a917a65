"""A power-cut model for the fault tests: what a process made durable, and the disk a cut leaves."""
