//! Converters under Kafka Connect's class names: between the bytes of a Kafka record's key or
//! value and Connect's [`Schema`](crate::data::Schema) and [`Value`](crate::data::Value).
