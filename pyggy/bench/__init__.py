"""pyggy-bench: load generators and reports for the native and (later) Kafka protocols."""
