"""Receivers: OTLP over HTTP and gRPC (and, later, Prometheus scrape and remote write)."""
