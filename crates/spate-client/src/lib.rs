//! A small async Kafka client for the `spate` user commands (stub; being written).
