"""The foresight benchmark: does ACE see degradation coming, and do users see
fewer slow requests with it than with the routers people use today? A
closed-loop simulation on synthetic and real traffic, plus a replay of real
telemetry with injected faults. `python -m bench.foresight` writes
reports/foresight.md."""
