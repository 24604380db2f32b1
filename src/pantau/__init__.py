"""pantau: all-in-one observability on OpenTelemetry.

The SDK half (`pantau.init`, `pantau.trace`, ...) runs inside your service; the hub half
(`pantau serve`) receives, stores, queries and watches the telemetry.
"""

__version__ = "0.1.0"
