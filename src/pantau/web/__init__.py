"""HTTP APIs on the hub's main port: Jaeger, Prometheus, pantau's own, health and metrics."""
