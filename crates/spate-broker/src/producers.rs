//! InitProducerId for idempotent producers: unique producer ids that never repeat, even across
//! restarts. Ids are handed out from blocks whose end is persisted before the first id of the
//! block is used (Kafka's AllocateProducerIds does the same through the controller), so a
//! crash loses at most the rest of a block, never reuses an id.
//! Per-partition sequence checks live with the log (`spate_log::ProducerState`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use parking_lot::Mutex;

use crate::Broker;

const PRODUCER_IDS_FILE: &str = "producer-ids";
/// Ids reserved per write of the high-water file.
const BLOCK_SIZE: i64 = 1000;

#[derive(Debug)]
struct Block {
    next: i64,
    end: i64,
}

/// Allocates producer ids.
#[derive(Debug)]
pub(crate) struct ProducerIds {
    path: PathBuf,
    block: Mutex<Block>,
}

impl ProducerIds {
    pub(crate) fn open(data_dir: &Path) -> Result<ProducerIds, String> {
        let path = data_dir.join(PRODUCER_IDS_FILE);
        let end = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<i64>()
                .map_err(|e| format!("corrupt {}: {e}", path.display()))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => 0,
            Err(err) => return Err(format!("cannot read {}: {err}", path.display())),
        };
        Ok(ProducerIds {
            path,
            block: Mutex::new(Block { next: end, end }),
        })
    }

    /// A fresh producer id; blocking when a new block must be recorded.
    pub(crate) fn allocate(&self) -> Result<i64, spate_log::LogError> {
        let mut block = self.block.lock();
        if block.next >= block.end {
            let end = block.end + BLOCK_SIZE;
            spate_log::write_atomic(&self.path, format!("{end}\n").as_bytes())?;
            block.end = end;
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}

impl Broker {
    pub(crate) async fn init_producer_id(
        self: &Arc<Self>,
        req: InitProducerIdRequest,
        version: i16,
    ) -> InitProducerIdResponse {
        let failed = |error: ResponseError| {
            InitProducerIdResponse::default()
                .with_error_code(error.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        };
        if let Some(id) = req.transactional_id.as_ref().filter(|id| !id.is_empty()) {
            return self.init_transactional_producer(&req, id, version).await;
        }
        // Idempotent producers always get a new id with epoch 0 (Kafka does the same when no
        // transactional id is given, including epoch-bump requests).
        let broker = Arc::clone(self);
        match tokio::task::spawn_blocking(move || broker.producer_ids.allocate()).await {
            Ok(Ok(id)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0),
            Ok(Err(err)) => {
                tracing::error!(error = %err, "cannot allocate a producer id");
                failed(ResponseError::KafkaStorageError)
            }
            Err(_) => failed(ResponseError::UnknownServerError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_never_repeat_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = ProducerIds::open(dir.path()).expect("open");
        let first: Vec<i64> = (0..3).map(|_| ids.allocate().expect("id")).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(ids);
        let ids = ProducerIds::open(dir.path()).expect("reopen");
        assert_eq!(ids.allocate().expect("id"), BLOCK_SIZE);
    }
}
