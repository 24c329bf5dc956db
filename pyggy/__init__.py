"""pyggy: a persistent message streaming server with Iggy and Kafka front doors."""

__version__ = "0.1.0"  # the one place the version is written (pyproject reads it)
