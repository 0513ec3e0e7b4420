//! A parallel job's stages. The planner puts an [`Flow::Exchange`] below every keyed operator
//! (an aggregate's group keys, a join's equality keys, Top-N's partition keys, an upsert
//! source's primary key). A job with parallelism 1 runs its whole flow in one task and the
//! exchanges pass rows straight through. With parallelism P, [`split`] cuts the flow at its
//! exchanges into stages; each stage runs as P tasks, and an exchange is a topic with P
//! partitions between two stages: the upstream tasks write each row to the partition its key
//! hashes to, and task p of the downstream stage reads partition p — so the rows of a key meet
//! in one task, which holds that key's state. This is Kafka Streams' repartition topic, in the
//! job's transactions like every other output.
//!
//! Watermarks cross an exchange as markers: each upstream task writes its watermark (and
//! whether all its inputs are idle) to every partition after the rows it wrote before it, and
//! a downstream task's watermark for the exchange is the smallest over the upstream tasks that
//! are not idle — Flink's rule for a network channel.

use serde_json::{Value as Json, json};

use crate::errors::SqlError;
use crate::exec::{Change, Kind};
use crate::expr::{Context, Expr};
use crate::plan::Flow;
use crate::types::{StateRow, Value, decode_state, state_text};

/// What a stage reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageInput {
    /// A source table (its index in the plan's sources).
    Source(usize),
    /// The exchange written by stage `n`.
    Exchange(usize),
}

/// A piece of a flow between exchanges.
pub struct Stage {
    /// Its operators; `Flow::Source(j)` is its input `j`.
    pub flow: Flow,
    /// What it reads.
    pub inputs: Vec<StageInput>,
    /// The exchange keys its rows are partitioned by, or None for the stage that writes the
    /// job's sink (the last).
    pub exchange: Option<Vec<Expr>>,
}

/// Cuts `flow` at its exchanges: upstream stages first, the sink's stage last. The same flow
/// always cuts the same way (stage numbers name exchange topics and tasks).
pub fn split(flow: Flow) -> Vec<Stage> {
    let mut stages = Vec::new();
    let mut inputs = Vec::new();
    let flow = cut(flow, &mut inputs, &mut stages);
    stages.push(Stage {
        flow,
        inputs,
        exchange: None,
    });
    stages
}

fn cut(flow: Flow, inputs: &mut Vec<StageInput>, stages: &mut Vec<Stage>) -> Flow {
    match flow {
        Flow::Source(i) => {
            inputs.push(StageInput::Source(i));
            Flow::Source(inputs.len() - 1)
        }
        Flow::Map(input, op) => Flow::Map(Box::new(cut(*input, inputs, stages)), op),
        Flow::Join(left, right, op) => {
            let left = cut(*left, inputs, stages);
            let right = cut(*right, inputs, stages);
            Flow::Join(Box::new(left), Box::new(right), op)
        }
        Flow::Exchange(input, keys) => {
            let mut below = Vec::new();
            let flow = cut(*input, &mut below, stages);
            stages.push(Stage {
                flow,
                inputs: below,
                exchange: Some(keys),
            });
            inputs.push(StageInput::Exchange(stages.len() - 1));
            Flow::Source(inputs.len() - 1)
        }
    }
}

/// The exchange topic stage `stage` of job `job` writes.
pub fn exchange_topic(job: &str, stage: usize) -> String {
    format!("spate-sql-{job}-exchange-{stage}")
}

/// FNV-1a: stable across processes and versions, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A row's exchange key (its record key) and the partition it goes to.
pub fn route(keys: &[Expr], row: &[Value], partitions: i32) -> Result<(Vec<u8>, i32), SqlError> {
    let context = Context::default();
    let mut values = Vec::with_capacity(keys.len());
    for k in keys {
        values.push(k.eval(row, &context)?);
    }
    let key = state_text(&StateRow(&values)).into_bytes();
    let partition = (fnv1a(&key) % partitions.max(1) as u64) as i32;
    Ok((key, partition))
}

/// A row as an exchange record's value: `[from, kind, [values...]]`.
pub fn encode_row(from: usize, change: &Change) -> Vec<u8> {
    state_text(&(from, change.kind.short(), StateRow(&change.row))).into_bytes()
}

/// A watermark marker: `{"from": task, "wm": ms or null, "idle": bool}`.
pub fn encode_marker(from: usize, watermark: Option<i64>, idle: bool) -> Vec<u8> {
    json!({"from": from, "wm": watermark, "idle": idle})
        .to_string()
        .into_bytes()
}

/// What an exchange record holds.
#[derive(Debug, PartialEq)]
pub enum Exchanged {
    /// A row from upstream task `from`.
    Row(usize, Change),
    /// Upstream task `from`'s watermark and whether it is idle.
    Marker(usize, Option<i64>, bool),
}

/// Reads an exchange record's value.
pub fn decode(bytes: &[u8]) -> Result<Exchanged, String> {
    let json: Json = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let from = |v: Option<&Json>| {
        v.and_then(Json::as_u64)
            .map(|n| n as usize)
            .ok_or("no upstream task")
    };
    match &json {
        Json::Array(parts) if parts.len() == 3 => {
            let kind = match parts[1].as_str() {
                Some("+I") => Kind::Insert,
                Some("-U") => Kind::UpdateBefore,
                Some("+U") => Kind::UpdateAfter,
                Some("-D") => Kind::Delete,
                other => return Err(format!("unknown change kind {other:?}")),
            };
            let row = parts[2]
                .as_array()
                .ok_or("no row")?
                .iter()
                .map(decode_state)
                .collect::<Option<Vec<Value>>>()
                .ok_or("a value that does not decode")?;
            Ok(Exchanged::Row(from(parts.first())?, Change { kind, row }))
        }
        Json::Object(map) => Ok(Exchanged::Marker(
            from(map.get("from"))?,
            map.get("wm").and_then(Json::as_i64),
            map.get("idle").and_then(Json::as_bool).unwrap_or(false),
        )),
        _ => Err("neither a row nor a marker".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_markers_read_back() {
        let change = Change {
            kind: Kind::UpdateBefore,
            row: vec![
                Value::Int(7),
                Value::str("x"),
                Value::Null,
                Value::Timestamp(5),
            ],
        };
        assert_eq!(
            decode(&encode_row(3, &change)),
            Ok(Exchanged::Row(3, change))
        );
        assert_eq!(
            decode(&encode_marker(1, Some(42), false)),
            Ok(Exchanged::Marker(1, Some(42), false))
        );
        assert_eq!(
            decode(&encode_marker(0, None, true)),
            Ok(Exchanged::Marker(0, None, true))
        );
        assert!(decode(b"[1]").is_err());
    }

    #[test]
    fn equal_keys_route_to_one_partition_and_keys_spread() {
        let keys = vec![Expr::Column(0)];
        let mut seen = std::collections::HashSet::new();
        for i in 0..64 {
            let (key, p) = route(&keys, &[Value::Int(i), Value::Int(0)], 4).unwrap_or_default();
            let (again, q) = route(&keys, &[Value::Int(i), Value::Int(99)], 4).unwrap_or_default();
            assert_eq!((key, p), (again, q));
            assert!((0..4).contains(&p));
            seen.insert(p);
        }
        assert_eq!(seen.len(), 4, "64 keys over 4 partitions use them all");
        // No keys (a global aggregate): one partition for every row.
        assert_eq!(
            route(&[], &[Value::Int(1)], 4).map(|r| r.1),
            route(&[], &[Value::Int(2)], 4).map(|r| r.1)
        );
    }
}
