//! Joins, as Flink runs them on streams. [`Join`] is the two-input operator behind regular
//! (updating) joins, interval joins and window joins: each side's rows are kept by the join key,
//! a row meets the other side's kept rows whose key is equal and for which the rest of the
//! condition holds; an outer side's row without a match is joined with NULLs. A regular join
//! keeps rows until `table.exec.state.ttl`, and retracts the NULL-padded row when a match comes;
//! an interval or window join lets rows go once the watermark passes the last time a match
//! could come, and only then pads an outer side's unmatched row, so its output only appends.
//! [`TemporalJoin`] is `FOR SYSTEM_TIME AS OF`: each probe row waits for the watermark to pass
//! its time, then meets the version of the build side's row valid at that time.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value as Json;

use crate::errors::SqlError;
use crate::exec::{Change, HashMap, Kind, OpCtx, Operator};
use crate::expr::{Context, Expr};
use crate::types::{StateRow, Value, decode_state, state_text};

/// INNER, LEFT, RIGHT or FULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinType {
    /// INNER
    Inner,
    /// LEFT [OUTER]
    Left,
    /// RIGHT [OUTER]
    Right,
    /// FULL [OUTER]
    Full,
}

impl JoinType {
    fn pads_left_rows(self) -> bool {
        matches!(self, JoinType::Left | JoinType::Full)
    }

    fn pads_right_rows(self) -> bool {
        matches!(self, JoinType::Right | JoinType::Full)
    }
}

/// When a side's rows can no longer match: `row[time] + keep_ms <= watermark`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// The time column of the side's rows.
    pub time: usize,
    /// How long after its time a row may still match.
    pub keep_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    id: u64,
    row: Vec<Value>,
    /// How many rows of the other side it is joined with.
    matched: u64,
}

#[derive(Default)]
struct SideState {
    rows: HashMap<Vec<Value>, Vec<Entry>>,
    /// Expiry: the keys and ids of rows by the watermark at which they expire.
    by_expiry: BTreeMap<i64, Vec<(Vec<Value>, u64)>>,
    dirty: HashSet<Vec<Value>>,
    /// Keys whose rows the changelog holds: a key whose rows came and went between two
    /// snapshots (an interval or window join's) writes nothing.
    persisted: HashSet<Vec<Value>>,
    next_id: u64,
}

impl SideState {
    fn entries(&self) -> usize {
        self.rows.values().map(Vec::len).sum()
    }
}

/// A regular, interval or window join.
pub struct Join {
    kind: JoinType,
    left_keys: Vec<Expr>,
    right_keys: Vec<Expr>,
    residual: Option<Expr>,
    left_width: usize,
    right_width: usize,
    left_expiry: Option<Expiry>,
    right_expiry: Option<Expiry>,
    left: SideState,
    right: SideState,
    label: &'static str,
    touched: crate::exec::Touched,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

impl Join {
    /// A join of rows `left_width` and `right_width` wide; `residual` sees the joined row.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: JoinType,
        left_keys: Vec<Expr>,
        right_keys: Vec<Expr>,
        residual: Option<Expr>,
        left_width: usize,
        right_width: usize,
        expiry: Option<(Expiry, Expiry)>,
        label: &'static str,
    ) -> Join {
        Join {
            kind,
            left_keys,
            right_keys,
            residual,
            left_width,
            right_width,
            left_expiry: expiry.map(|(l, _)| l),
            right_expiry: expiry.map(|(_, r)| r),
            left: SideState::default(),
            right: SideState::default(),
            label,
            touched: crate::exec::Touched::default(),
        }
    }

    fn joined(&self, side: Side, this: &[Value], other: &[Value]) -> Vec<Value> {
        let (l, r) = match side {
            Side::Left => (this, other),
            Side::Right => (other, this),
        };
        let mut row = Vec::with_capacity(self.left_width + self.right_width);
        row.extend_from_slice(l);
        row.extend_from_slice(r);
        row
    }

    fn padded(&self, side: Side, this: &[Value]) -> Vec<Value> {
        match side {
            Side::Left => {
                let mut row = this.to_vec();
                row.resize(self.left_width + self.right_width, Value::Null);
                row
            }
            Side::Right => {
                let mut row = vec![Value::Null; self.left_width];
                row.extend_from_slice(this);
                row
            }
        }
    }

    fn pads(&self, side: Side) -> bool {
        match side {
            Side::Left => self.kind.pads_left_rows(),
            Side::Right => self.kind.pads_right_rows(),
        }
    }

    fn expiry(&self, side: Side) -> Option<Expiry> {
        match side {
            Side::Left => self.left_expiry,
            Side::Right => self.right_expiry,
        }
    }

    fn expires_at(&self, side: Side, row: &[Value]) -> Option<i64> {
        let e = self.expiry(side)?;
        match row.get(e.time) {
            Some(Value::Timestamp(t)) => Some(t.saturating_add(e.keep_ms)),
            _ => Some(i64::MIN),
        }
    }

    fn process_side(
        &mut self,
        side: Side,
        input: Vec<Change>,
        ctx: &mut OpCtx,
    ) -> Result<Vec<Change>, SqlError> {
        let eval = Context {
            watermark: ctx.watermark,
        };
        let timed = self.left_expiry.is_some();
        let mut out = Vec::new();
        for change in input {
            let keys = match side {
                Side::Left => &self.left_keys,
                Side::Right => &self.right_keys,
            };
            let key: Vec<Value> = match keys.iter().map(|k| k.eval(&change.row, &eval)).collect() {
                Ok(k) => k,
                Err(e) => {
                    if ctx.skip_errors {
                        ctx.skipped += 1;
                        continue;
                    }
                    return Err(e);
                }
            };
            let expires = self.expires_at(side, &change.row);
            if let (Some(at), Some(w)) = (expires, ctx.watermark)
                && at <= w
            {
                ctx.late_dropped += 1;
                continue;
            }
            let null_key = key.iter().any(Value::is_null);
            if !timed {
                self.touched.touch(&key, ctx.now_ms);
            }
            // The other side's rows this row meets.
            let mut partners: Vec<usize> = Vec::new();
            if !null_key {
                let other = match side {
                    Side::Left => &self.right,
                    Side::Right => &self.left,
                };
                if let Some(entries) = other.rows.get(&key) {
                    for (i, entry) in entries.iter().enumerate() {
                        let joined = self.joined(side, &change.row, &entry.row);
                        let ok = match &self.residual {
                            Some(r) => r.eval(&joined, &eval)?.is_true(),
                            None => true,
                        };
                        if ok {
                            partners.push(i);
                        }
                    }
                }
            }
            let other_side = match side {
                Side::Left => Side::Right,
                Side::Right => Side::Left,
            };
            let other_pads = self.pads(other_side) && !timed;
            if change.kind.adds() {
                let mut emitted = Vec::new();
                {
                    let other = match side {
                        Side::Left => &mut self.right,
                        Side::Right => &mut self.left,
                    };
                    if !partners.is_empty() {
                        other.dirty.insert(key.clone());
                    }
                    if let Some(entries) = other.rows.get_mut(&key) {
                        for &i in &partners {
                            let entry = &mut entries[i];
                            if entry.matched == 0 && other_pads {
                                emitted.push((Kind::Delete, entry.row.clone(), true));
                            }
                            entry.matched += 1;
                            emitted.push((Kind::Insert, entry.row.clone(), false));
                        }
                    }
                }
                for (kind, other_row, padded) in emitted {
                    let row = if padded {
                        self.padded(other_side, &other_row)
                    } else {
                        self.joined(side, &change.row, &other_row)
                    };
                    out.push(Change { kind, row });
                }
                if partners.is_empty() && self.pads(side) && !timed {
                    out.push(Change::insert(self.padded(side, &change.row)));
                }
                if !null_key || self.pads(side) {
                    let state = match side {
                        Side::Left => &mut self.left,
                        Side::Right => &mut self.right,
                    };
                    let id = state.next_id;
                    state.next_id += 1;
                    if let Some(at) = expires {
                        state
                            .by_expiry
                            .entry(at)
                            .or_default()
                            .push((key.clone(), id));
                    }
                    state.rows.entry(key.clone()).or_default().push(Entry {
                        id,
                        row: change.row,
                        matched: partners.len() as u64,
                    });
                    state.dirty.insert(key);
                }
            } else {
                // A retraction: take back what the row made.
                let removed = {
                    let state = match side {
                        Side::Left => &mut self.left,
                        Side::Right => &mut self.right,
                    };
                    let Some(entries) = state.rows.get_mut(&key) else {
                        continue;
                    };
                    let Some(pos) = entries.iter().position(|e| e.row == change.row) else {
                        continue;
                    };
                    let entry = entries.remove(pos);
                    if entries.is_empty() {
                        state.rows.remove(&key);
                    }
                    state.dirty.insert(key.clone());
                    entry
                };
                let mut emitted = Vec::new();
                {
                    let other = match side {
                        Side::Left => &mut self.right,
                        Side::Right => &mut self.left,
                    };
                    if !partners.is_empty() {
                        other.dirty.insert(key.clone());
                    }
                    if let Some(entries) = other.rows.get_mut(&key) {
                        for &i in &partners {
                            let entry = &mut entries[i];
                            emitted.push((Kind::Delete, entry.row.clone(), false));
                            entry.matched = entry.matched.saturating_sub(1);
                            if entry.matched == 0 && other_pads {
                                emitted.push((Kind::Insert, entry.row.clone(), true));
                            }
                        }
                    }
                }
                for (kind, other_row, padded) in emitted {
                    let row = if padded {
                        self.padded(other_side, &other_row)
                    } else {
                        self.joined(side, &removed.row, &other_row)
                    };
                    out.push(Change { kind, row });
                }
                if removed.matched == 0 && self.pads(side) && !timed {
                    out.push(Change {
                        kind: Kind::Delete,
                        row: self.padded(side, &removed.row),
                    });
                }
            }
        }
        Ok(out)
    }

    fn expire(&mut self, side: Side, watermark: i64) -> Vec<Change> {
        let pads = self.pads(side);
        let mut gone = Vec::new();
        {
            let state = match side {
                Side::Left => &mut self.left,
                Side::Right => &mut self.right,
            };
            let due: Vec<i64> = state
                .by_expiry
                .range(..=watermark)
                .map(|(t, _)| *t)
                .collect();
            for t in due {
                for (key, id) in state.by_expiry.remove(&t).unwrap_or_default() {
                    if let Some(entries) = state.rows.get_mut(&key) {
                        if let Some(pos) = entries.iter().position(|e| e.id == id) {
                            let entry = entries.remove(pos);
                            if pads && entry.matched == 0 {
                                gone.push(entry.row);
                            }
                        }
                        if entries.is_empty() {
                            state.rows.remove(&key);
                        }
                    }
                    state.dirty.insert(key);
                }
            }
        }
        gone.into_iter()
            .map(|row| Change::insert(self.padded(side, &row)))
            .collect()
    }
}

/// A key's entries as state JSON: `[[id, matched, row], ...]`.
fn entries_text(entries: &[Entry]) -> String {
    state_text(
        &entries
            .iter()
            .map(|e| (e.id, e.matched, StateRow(&e.row)))
            .collect::<Vec<_>>(),
    )
}

fn entries_from_json(json: &Json) -> Option<Vec<Entry>> {
    json.as_array()?
        .iter()
        .map(|e| {
            Some(Entry {
                id: e.get(0)?.as_u64()?,
                matched: e.get(1)?.as_u64()?,
                row: e
                    .get(2)?
                    .as_array()?
                    .iter()
                    .map(decode_state)
                    .collect::<Option<_>>()?,
            })
        })
        .collect()
}

fn key_text(key: &[Value]) -> String {
    state_text(&StateRow(key))
}

fn key_from_text(text: &str) -> Option<Vec<Value>> {
    let json: Json = serde_json::from_str(text).ok()?;
    json.as_array()?.iter().map(decode_state).collect()
}

impl Operator for Join {
    fn describe(&self) -> String {
        format!(
            "{}(type={:?}, keys={}, residual={}{})",
            self.label,
            self.kind,
            self.left_keys.len(),
            self.residual.is_some(),
            match (self.left_expiry, self.right_expiry) {
                (Some(l), Some(r)) => format!(
                    ", left rows kept {} ms, right rows kept {} ms",
                    l.keep_ms, r.keep_ms
                ),
                _ => ", state kept until table.exec.state.ttl".to_string(),
            }
        )
    }

    fn process(&mut self, input: Vec<Change>, ctx: &mut OpCtx) -> Result<Vec<Change>, SqlError> {
        self.process_side(Side::Left, input, ctx)
    }

    fn process_right(
        &mut self,
        input: Vec<Change>,
        ctx: &mut OpCtx,
    ) -> Result<Vec<Change>, SqlError> {
        self.process_side(Side::Right, input, ctx)
    }

    fn on_watermark(&mut self, watermark: i64, _ctx: &mut OpCtx) -> Result<Vec<Change>, SqlError> {
        let mut out = self.expire(Side::Left, watermark);
        out.extend(self.expire(Side::Right, watermark));
        Ok(out)
    }

    fn snapshot(&mut self) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        for (tag, state) in [("L", &mut self.left), ("R", &mut self.right)] {
            let dirty: Vec<Vec<Value>> = state.dirty.drain().collect();
            for key in dirty {
                let value = state.rows.get(&key).map(|e| entries_text(e));
                if value.is_some() {
                    state.persisted.insert(key.clone());
                } else if !state.persisted.remove(&key) {
                    continue;
                }
                out.push((format!("{tag}{}", key_text(&key)), value));
            }
            out.push((format!("{tag}#"), Some(state.next_id.to_string())));
        }
        out
    }

    fn restore(&mut self, key: &str, value: &Json) -> Result<(), SqlError> {
        let bad = || SqlError::Runtime(format!("unreadable join state for key {key}"));
        let (side, rest) = match key.split_at_checked(1) {
            Some(("L", rest)) => (Side::Left, rest),
            Some(("R", rest)) => (Side::Right, rest),
            _ => return Err(bad()),
        };
        if rest == "#" {
            let next = value.as_u64().ok_or_else(bad)?;
            match side {
                Side::Left => self.left.next_id = next,
                Side::Right => self.right.next_id = next,
            }
            return Ok(());
        }
        let key = key_from_text(rest).ok_or_else(bad)?;
        let entries = entries_from_json(value).ok_or_else(bad)?;
        let expiries: Vec<(i64, u64)> = entries
            .iter()
            .filter_map(|e| Some((self.expires_at(side, &e.row)?, e.id)))
            .collect();
        let state = match side {
            Side::Left => &mut self.left,
            Side::Right => &mut self.right,
        };
        for (at, id) in expiries {
            state
                .by_expiry
                .entry(at)
                .or_default()
                .push((key.clone(), id));
        }
        state.persisted.insert(key.clone());
        state.rows.insert(key, entries);
        Ok(())
    }

    fn state_entries(&self) -> usize {
        self.left.entries() + self.right.entries()
    }

    fn expire_idle(&mut self, before_ms: i64) {
        for key in self.touched.idle(before_ms) {
            for state in [&mut self.left, &mut self.right] {
                if state.rows.remove(&key).is_some() {
                    state.dirty.insert(key.clone());
                }
            }
        }
    }
}

/// `JOIN versioned FOR SYSTEM_TIME AS OF probe.time`: an event-time temporal join.
pub struct TemporalJoin {
    left_outer: bool,
    left_keys: Vec<Expr>,
    right_keys: Vec<Expr>,
    residual: Option<Expr>,
    left_time: usize,
    right_time: Option<usize>,
    left_width: usize,
    right_width: usize,
    /// Probe rows waiting for the watermark: by time, in arrival order.
    waiting: BTreeMap<i64, Vec<Vec<Value>>>,
    /// The build side's versions per key: time → row (None: deleted).
    versions: HashMap<Vec<Value>, BTreeMap<i64, Option<Vec<Value>>>>,
    dirty_waiting: HashSet<i64>,
    dirty_versions: HashSet<Vec<Value>>,
}

impl TemporalJoin {
    /// A temporal join; `right_time` is the build side's rowtime (None: processing time, the
    /// latest version).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        left_outer: bool,
        left_keys: Vec<Expr>,
        right_keys: Vec<Expr>,
        residual: Option<Expr>,
        left_time: usize,
        right_time: Option<usize>,
        left_width: usize,
        right_width: usize,
    ) -> TemporalJoin {
        TemporalJoin {
            left_outer,
            left_keys,
            right_keys,
            residual,
            left_time,
            right_time,
            left_width,
            right_width,
            waiting: BTreeMap::new(),
            versions: HashMap::default(),
            dirty_waiting: HashSet::new(),
            dirty_versions: HashSet::new(),
        }
    }

    fn probe(
        &self,
        row: &[Value],
        at: Option<i64>,
        eval: &Context,
    ) -> Result<Option<Change>, SqlError> {
        let key: Vec<Value> = self
            .left_keys
            .iter()
            .map(|k| k.eval(row, eval))
            .collect::<Result<_, _>>()?;
        let version = self.versions.get(&key).and_then(|v| match at {
            Some(t) => v.range(..=t).next_back().map(|(_, r)| r.clone()),
            None => v.values().next_back().cloned(),
        });
        if let Some(Some(right)) = version {
            let mut joined = row.to_vec();
            joined.extend(right);
            let ok = match &self.residual {
                Some(r) => r.eval(&joined, eval)?.is_true(),
                None => true,
            };
            if ok {
                return Ok(Some(Change::insert(joined)));
            }
        }
        if self.left_outer {
            let mut joined = row.to_vec();
            joined.resize(self.left_width + self.right_width, Value::Null);
            return Ok(Some(Change::insert(joined)));
        }
        Ok(None)
    }
}

impl Operator for TemporalJoin {
    fn describe(&self) -> String {
        format!(
            "TemporalJoin(type={}, keys={}, {})",
            if self.left_outer { "Left" } else { "Inner" },
            self.left_keys.len(),
            if self.right_time.is_some() {
                "event time"
            } else {
                "processing time"
            }
        )
    }

    fn process(&mut self, input: Vec<Change>, ctx: &mut OpCtx) -> Result<Vec<Change>, SqlError> {
        let eval = Context {
            watermark: ctx.watermark,
        };
        let mut out = Vec::new();
        for change in input {
            if !change.kind.adds() {
                continue;
            }
            if self.right_time.is_none() {
                out.extend(self.probe(&change.row, None, &eval)?);
                continue;
            }
            let Some(Value::Timestamp(t)) = change.row.get(self.left_time).cloned() else {
                continue;
            };
            if ctx.watermark.is_some_and(|w| t <= w) {
                // Its version is known already.
                out.extend(self.probe(&change.row, Some(t), &eval)?);
                continue;
            }
            self.waiting.entry(t).or_default().push(change.row);
            self.dirty_waiting.insert(t);
        }
        Ok(out)
    }

    fn process_right(
        &mut self,
        input: Vec<Change>,
        ctx: &mut OpCtx,
    ) -> Result<Vec<Change>, SqlError> {
        let eval = Context {
            watermark: ctx.watermark,
        };
        for change in input {
            if change.kind == Kind::UpdateBefore {
                continue;
            }
            let key: Vec<Value> = self
                .right_keys
                .iter()
                .map(|k| k.eval(&change.row, &eval))
                .collect::<Result<_, _>>()?;
            let at = match self.right_time {
                Some(i) => match change.row.get(i) {
                    Some(Value::Timestamp(t)) => *t,
                    _ => continue,
                },
                None => 0,
            };
            let versions = self.versions.entry(key.clone()).or_default();
            if self.right_time.is_none() {
                versions.clear();
            }
            if change.kind == Kind::Delete {
                let at = ctx.watermark.map_or(at, |w| w.max(at));
                versions.insert(at, None);
            } else {
                versions.insert(at, Some(change.row));
            }
            self.dirty_versions.insert(key);
        }
        Ok(Vec::new())
    }

    fn on_watermark(&mut self, watermark: i64, _ctx: &mut OpCtx) -> Result<Vec<Change>, SqlError> {
        let eval = Context {
            watermark: Some(watermark),
        };
        let due: Vec<i64> = self.waiting.range(..=watermark).map(|(t, _)| *t).collect();
        let mut out = Vec::new();
        for t in due {
            for row in self.waiting.remove(&t).unwrap_or_default() {
                out.extend(self.probe(&row, Some(t), &eval)?);
            }
            self.dirty_waiting.insert(t);
        }
        // Versions older than the one valid at the watermark are no longer needed.
        for (key, versions) in self.versions.iter_mut() {
            let Some((&current, _)) = versions.range(..=watermark).next_back() else {
                continue;
            };
            let before = versions.len();
            versions.retain(|t, _| *t >= current);
            if versions.len() != before {
                self.dirty_versions.insert(key.clone());
            }
        }
        Ok(out)
    }

    fn snapshot(&mut self) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        for t in self.dirty_waiting.drain() {
            let value = self
                .waiting
                .get(&t)
                .map(|rows| state_text(&rows.iter().map(|r| StateRow(r)).collect::<Vec<_>>()));
            out.push((format!("W{t}"), value));
        }
        for key in self.dirty_versions.drain() {
            let value = self.versions.get(&key).map(|v| {
                state_text(
                    &v.iter()
                        .map(|(t, row)| (t, row.as_deref().map(StateRow)))
                        .collect::<Vec<_>>(),
                )
            });
            out.push((format!("V{}", key_text(&key)), value));
        }
        out
    }

    fn restore(&mut self, key: &str, value: &Json) -> Result<(), SqlError> {
        let bad = || SqlError::Runtime(format!("unreadable temporal join state for key {key}"));
        let row_of =
            |j: &Json| -> Option<Vec<Value>> { j.as_array()?.iter().map(decode_state).collect() };
        if let Some(t) = key.strip_prefix('W') {
            let t: i64 = t.parse().map_err(|_| bad())?;
            let rows = value
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(row_of)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad)?;
            self.waiting.insert(t, rows);
        } else if let Some(k) = key.strip_prefix('V') {
            let k = key_from_text(k).ok_or_else(bad)?;
            let versions = value
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|v| {
                    let t = v.get(0)?.as_i64()?;
                    let row = match v.get(1)? {
                        Json::Null => None,
                        r => Some(row_of(r)?),
                    };
                    Some((t, row))
                })
                .collect::<Option<BTreeMap<_, _>>>()
                .ok_or_else(bad)?;
            self.versions.insert(k, versions);
        }
        Ok(())
    }

    fn state_entries(&self) -> usize {
        self.waiting.values().map(Vec::len).sum::<usize>()
            + self.versions.values().map(BTreeMap::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(i: i64) -> Value {
        Value::Int(i)
    }

    #[test]
    fn a_left_join_pads_then_retracts_the_padding_when_a_match_comes() {
        let mut join = Join::new(
            JoinType::Left,
            vec![Expr::Column(0)],
            vec![Expr::Column(0)],
            None,
            2,
            2,
            None,
            "Join",
        );
        let mut ctx = OpCtx::default();
        let out = join
            .process(vec![Change::insert(vec![v(1), v(10)])], &mut ctx)
            .expect("ok");
        assert_eq!(
            out,
            vec![Change::insert(vec![v(1), v(10), Value::Null, Value::Null])]
        );
        let out = join
            .process_right(vec![Change::insert(vec![v(1), v(20)])], &mut ctx)
            .expect("ok");
        assert_eq!(
            out,
            vec![
                Change {
                    kind: Kind::Delete,
                    row: vec![v(1), v(10), Value::Null, Value::Null]
                },
                Change::insert(vec![v(1), v(10), v(1), v(20)]),
            ]
        );
        let out = join
            .process_right(
                vec![Change {
                    kind: Kind::Delete,
                    row: vec![v(1), v(20)],
                }],
                &mut ctx,
            )
            .expect("ok");
        assert_eq!(
            out,
            vec![
                Change {
                    kind: Kind::Delete,
                    row: vec![v(1), v(10), v(1), v(20)]
                },
                Change::insert(vec![v(1), v(10), Value::Null, Value::Null]),
            ]
        );
    }

    #[test]
    fn an_interval_join_forgets_rows_after_the_watermark_and_pads_late() {
        // left rows may meet right rows up to 5 s later; right rows left rows up to 0 s later.
        let mut join = Join::new(
            JoinType::Left,
            vec![Expr::Column(0)],
            vec![Expr::Column(0)],
            None,
            2,
            2,
            Some((
                Expiry {
                    time: 1,
                    keep_ms: 5_001,
                },
                Expiry {
                    time: 1,
                    keep_ms: 1,
                },
            )),
            "IntervalJoin",
        );
        let mut ctx = OpCtx::default();
        let t = Value::Timestamp;
        assert!(
            join.process(vec![Change::insert(vec![v(1), t(0)])], &mut ctx)
                .expect("ok")
                .is_empty()
        );
        assert!(
            join.process(vec![Change::insert(vec![v(2), t(0)])], &mut ctx)
                .expect("ok")
                .is_empty()
        );
        let out = join
            .process_right(vec![Change::insert(vec![v(1), t(3_000)])], &mut ctx)
            .expect("ok");
        assert_eq!(out.len(), 1);
        let out = join.on_watermark(5_001, &mut ctx).expect("ok");
        assert_eq!(
            out,
            vec![Change::insert(vec![v(2), t(0), Value::Null, Value::Null])]
        );
        assert_eq!(join.state_entries(), 0);
        for (key, value) in join.snapshot() {
            if let Some(value) = value {
                let value: Json = serde_json::from_str(&value).expect("JSON");
                join.restore(&key, &value).expect("restores");
            }
        }
    }

    #[test]
    fn a_temporal_join_meets_the_version_valid_at_the_probe_time() {
        let mut join = TemporalJoin::new(
            false,
            vec![Expr::Column(0)],
            vec![Expr::Column(0)],
            None,
            1,
            Some(1),
            2,
            3,
        );
        let mut ctx = OpCtx::default();
        let t = Value::Timestamp;
        join.process_right(
            vec![
                Change::insert(vec![v(1), t(0), Value::str("old")]),
                Change::insert(vec![v(1), t(10), Value::str("new")]),
            ],
            &mut ctx,
        )
        .expect("ok");
        join.process(
            vec![
                Change::insert(vec![v(1), t(5)]),
                Change::insert(vec![v(1), t(12)]),
            ],
            &mut ctx,
        )
        .expect("ok");
        let out = join.on_watermark(20, &mut ctx).expect("ok");
        assert_eq!(out[0].row[4], Value::str("old"));
        assert_eq!(out[1].row[4], Value::str("new"));
    }
}
