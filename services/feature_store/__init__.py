"""The feature store: per-backend telemetry windows and the features computed from them."""
