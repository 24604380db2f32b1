"""OTLP wire formats: decoding requests into pantau's model and back."""
