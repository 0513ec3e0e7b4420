//! Single message transforms and predicates under Kafka Connect's class names.
//! (Placeholder until the transforms land.)

use crate::config::{ConfigProblem, Props};
use crate::data::ConnectRecord;

/// A transform failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransformError(pub String);

/// The transforms of a connector, in order.
pub struct Chain;

impl Chain {
    /// Applies the chain; `None` drops the record.
    pub fn apply(
        &mut self,
        record: ConnectRecord,
    ) -> Result<Option<ConnectRecord>, TransformError> {
        Ok(Some(record))
    }
    /// Whether the chain does nothing.
    pub fn is_empty(&self) -> bool {
        true
    }
}

/// Builds the chain a connector config asks for.
pub fn chain(_props: &Props) -> Result<Chain, Vec<ConfigProblem>> {
    Ok(Chain)
}

/// The transform and predicate class names known.
pub fn plugins() -> Vec<(&'static str, &'static str)> {
    Vec::new()
}
