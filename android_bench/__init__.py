"""On-device latency profiling over adb/ssh (targets, benchmark binaries, output parsers, fleets).

Nothing is implemented here yet: this package is where the profiling work of the adb issue lands.
"""
