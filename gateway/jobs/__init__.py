"""The durable job queue: a row per received instance, a row per delivery to a destination."""
