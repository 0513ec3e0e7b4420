//! Operators: each takes a batch of [`Change`]s (a row with its kind: insert, update before,
//! update after, delete — Flink's changelog row kinds) and gives the changes it produces;
//! watermarks pass through [`Operator::on_watermark`], which is where window results become
//! final. A stateful operator keeps its state in memory and reports what changed since its
//! last [`Operator::snapshot`] — the job writes that to the job's changelog topic in the same
//! transaction as its outputs and input offsets, and [`Operator::restore`] reads it back.
//! No I/O here.

use std::collections::{BTreeMap, HashSet};

/// Operators' keyed state: a fast hasher (foldhash), not std's SipHash — keys are the job's
/// own rows, and hashing them is a good part of a stateful operator's time.
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use serde_json::Value as Json;

use crate::errors::SqlError;
use crate::expr::{Context, Expr};
use crate::types::{DataType, State, StateRow, Value, decode_state, state_text};

/// Flink's row kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// +I
    Insert,
    /// -U
    UpdateBefore,
    /// +U
    UpdateAfter,
    /// -D
    Delete,
}

impl Kind {
    /// Whether the row is added (+I, +U) rather than retracted (-U, -D).
    pub fn adds(self) -> bool {
        matches!(self, Kind::Insert | Kind::UpdateAfter)
    }

    /// Flink's short name: `+I`, `-U`, `+U`, `-D`.
    pub fn short(self) -> &'static str {
        match self {
            Kind::Insert => "+I",
            Kind::UpdateBefore => "-U",
            Kind::UpdateAfter => "+U",
            Kind::Delete => "-D",
        }
    }
}

/// A row with its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The kind.
    pub kind: Kind,
    /// The row.
    pub row: Vec<Value>,
}

impl Change {
    /// An inserted row.
    pub fn insert(row: Vec<Value>) -> Change {
        Change {
            kind: Kind::Insert,
            row,
        }
    }
}

/// What operators share while a batch runs.
#[derive(Debug, Default)]
pub struct OpCtx {
    /// The watermark the operators have seen (None before the first).
    pub watermark: Option<i64>,
    /// While a watermark advance runs: the watermark before it. Rows an operator emits
    /// because of the advance are judged late or not by it downstream, not by the new one.
    pub prior_watermark: Option<i64>,
    /// Records dropped because their window had closed.
    pub late_dropped: u64,
    /// Rows skipped because an expression failed (error policy `skip`).
    pub skipped: u64,
    /// Skip rows whose expressions fail instead of failing the job.
    pub skip_errors: bool,
    /// The wall clock (ms) of this batch: when keyed state was last touched, for
    /// `table.exec.state.ttl`.
    pub now_ms: i64,
}

impl OpCtx {
    fn eval_context(&self) -> Context {
        Context {
            watermark: self.watermark,
        }
    }

    /// An expression failed on a row: skip it (and count) or fail.
    fn failed(&mut self, e: SqlError) -> Result<(), SqlError> {
        if self.skip_errors {
            self.skipped += 1;
            Ok(())
        } else {
            Err(e)
        }
    }
}

/// One step of a dataflow.
pub trait Operator: Send {
    /// One line for EXPLAIN.
    fn describe(&self) -> String;
    /// The changes `input` causes.
    fn process(&mut self, input: Vec<Change>, ctx: &mut OpCtx) -> Result<Vec<Change>, SqlError>;
    /// The changes the second input's `input` causes (joins); one-input operators have none.
    fn process_right(
        &mut self,
        _input: Vec<Change>,
        _ctx: &mut OpCtx,
    ) -> Result<Vec<Change>, SqlError> {
        Err(SqlError::Runtime(format!(
            "{} has one input",
            self.describe()
        )))
    }
    /// The watermark advanced to `watermark`: what becomes final.
    fn on_watermark(&mut self, _watermark: i64, _ctx: &mut OpCtx) -> Result<Vec<Change>, SqlError> {
        Ok(Vec::new())
    }
    /// State entries changed since the last snapshot: (key, new value or None if deleted).
    fn snapshot(&mut self) -> Vec<(String, Option<String>)> {
        Vec::new()
    }
    /// Puts back one state entry a snapshot wrote.
    fn restore(&mut self, _key: &str, _value: &Json) -> Result<(), SqlError> {
        Ok(())
    }
    /// How many state entries it holds.
    fn state_entries(&self) -> usize {
        0
    }
    /// Forgets keyed state last touched before `before_ms` (`table.exec.state.ttl`, in
    /// processing time as Flink's); windowed state goes with its windows instead.
    fn expire_idle(&mut self, _before_ms: i64) {}
    /// The wall clock reached `now_ms`: what a processing-time operator emits.
    fn on_processing_time(
        &mut self,
        _now_ms: i64,
        _ctx: &mut OpCtx,
    ) -> Result<Vec<Change>, SqlError> {
        Ok(Vec::new())
    }
    /// Where output column `column` comes from (to find time attributes through projections).
    fn origin(&self, _column: usize) -> Origin {
        Origin::Other
    }
    /// Whether it only appends columns to each input row (possibly copying the row, as a
    /// window assigner does per window): an exchange keyed by input columns can go below it.
    fn appends(&self) -> bool {
        false
    }
}

/// Where an operator's output column comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The input's column.
    Input(usize),
    /// `PROCTIME()`: the wall clock when the row passed.
    Proctime,
    /// Computed otherwise.
    Other,
}

/// When each key's state was last touched (processing time), for `table.exec.state.ttl`.
#[derive(Debug, Default)]
pub struct Touched {
    last: HashMap<Vec<Value>, i64>,
}

impl Touched {
    /// `key` was used at `now_ms`.
    pub fn touch(&mut self, key: &[Value], now_ms: i64) {
        if let Some(t) = self.last.get_mut(key) {
            *t = now_ms;
        } else {
            self.last.insert(key.to_vec(), now_ms);
        }
    }

    /// The keys last used before `before_ms`, forgotten here.
    pub fn idle(&mut self, before_ms: i64) -> Vec<Vec<Value>> {
        let idle: Vec<Vec<Value>> = self
            .last
            .iter()
            .filter(|(_, t)| **t < before_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &idle {
            self.last.remove(k);
        }
        idle
    }
}

/// WHERE and HAVING.
pub struct Filter {
    predicate: Expr,
    clause: &'static str,
}

impl Filter {
    /// A filter keeping rows where `predicate` is TRUE.
    pub fn new(predicate: Expr, clause: &'static str) -> Filter {
        Filter { predicate, clause }
    }
}

impl Operator for Filter {
    fn origin(&self, column: usize) -> Origin {
        Origin::Input(column)
    }

    fn describe(&self) -> String {
        format!("Filter({})", self.clause)
    }

    fn process(&mut self, input: Vec<Change>, ctx: &mut OpCtx) -> Result<Vec<Change>, SqlError> {
        let eval = ctx.eval_context();
        let mut out = Vec::with_capacity(input.len());
        for change in input {
            match self.predicate.eval(&change.row, &eval) {
                Ok(v) if v.is_true() => out.push(change),
                Ok(_) => {}
                Err(e) => ctx.failed(e)?,
            }
        }
        Ok(out)
    }
}

/// SELECT's expressions.
pub struct Project {
    exprs: Vec<Expr>,
}

impl Project {
    /// A projection.
    pub fn new(exprs: Vec<Expr>) -> Project {
        Project { exprs }
    }
}

impl Operator for Project {
    fn origin(&self, column: usize) -> Origin {
        match self.exprs.get(column) {
            Some(Expr::Column(c)) => Origin::Input(*c),
            Some(Expr::Call(f, _)) if f.name == "PROCTIME" => Origin::Proctime,
            _ => Origin::Other,
        }
    }

    fn describe(&self) -> String {
        format!("Project({} columns)", self.exprs.len())
    }

    fn process(&mut self, input: Vec<Change>, ctx: &mut OpCtx) -> Result<Vec<Change>, SqlError> {
        let eval = ctx.eval_context();
        let mut out = Vec::with_capacity(input.len());
        'rows: for change in input {
            let mut row = Vec::with_capacity(self.exprs.len());
            for e in &self.exprs {
                match e.eval(&change.row, &eval) {
                    Ok(v) => row.push(v),
                    Err(e) => {
                        ctx.failed(e)?;
                        continue 'rows;
                    }
                }
            }
            out.push(Change {
                kind: change.kind,
                row,
            });
        }
        Ok(out)
    }
}

/// A window table function's windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// TUMBLE(size)
    Tumble {
        /// ms
        size: i64,
    },
    /// HOP(slide, size)
    Hop {
        /// ms
        slide: i64,
        /// ms
        size: i64,
    },
    /// CUMULATE(step, size)
    Cumulate {
        /// ms
        step: i64,
        /// ms
        size: i64,
    },
    /// SESSION(gap): merged in the aggregate
    Session {
        /// ms
        gap: i64,
    },
}

/// Appends `window_start`, `window_end` and `window_time` to each row, once per window the
/// row's time falls in.
pub struct WindowAssigner {
    kind: Option<WindowKind>,
    time: usize,
}

impl WindowAssigner {
    /// Assigns windows of `kind` by the timestamp in column `time`.
    pub fn new(kind: WindowKind, time: usize) -> WindowAssigner {
        WindowAssigner {
            kind: Some(kind),
            time,
        }
    }

    /// For SESSION: appends NULL window columns (the aggregate assigns sessions).
    pub fn placeholder(time: usize) -> WindowAssigner {
        WindowAssigner { kind: None, time }
    }

    /// The windows `[start, end)` holding time `t`.
    pub fn windows(kind: WindowKind, t: i64) -> Vec<(i64, i64)> {
        match kind {
            WindowKind::Tumble { size } => {
                let start = t - t.rem_euclid(size);
                vec![(start, start + size)]
            }
            WindowKind::Hop { slide, size } => {
                let last = t - t.rem_euclid(slide);
                let mut out = Vec::new();
                let mut start = last;
                while start > t - size {
                    out.push((start, start + size));
                    start -= slide;
                }
                out.reverse();
                out
            }
            WindowKind::Cumulate { step, size } => {
                let start = t - t.rem_euclid(size);
                let first_end = t - t.rem_euclid(step) + step;
                let mut out = Vec::new();
                let mut end = first_end;
                while end <= start + size {
                    out.push((start, end));
                    end += step;
                }
                out
            }
            WindowKind::Session { gap } => vec![(t, t + gap)],
        }
    }
}

impl Operator for WindowAssigner {
    fn appends(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        match self.kind {
            Some(kind) => format!("WindowTableFunction({kind:?}, time=${})", self.time),
            None => format!("WindowTableFunction(Session, time=${})", self.time),
        }
    }

    fn process(&mut self, input: Vec<Change>, _ctx: &mut OpCtx) -> Result<Vec<Change>, SqlError> {
        let mut out = Vec::with_capacity(input.len());
        for change in input {
            let Some(kind) = self.kind else {
                let mut row = change.row;
                row.extend([Value::Null, Value::Null, Value::Null]);
                out.push(Change {
                    kind: change.kind,
                    row,
                });
                continue;
            };
            let Value::Timestamp(t) = change.row.get(self.time).cloned().unwrap_or(Value::Null)
            else {
                continue; // a NULL time belongs to no window
            };
            for (start, end) in WindowAssigner::windows(kind, t) {
                let mut row = change.row.clone();
                row.extend([
                    Value::Timestamp(start),
                    Value::Timestamp(end),
                    Value::Timestamp(end - 1),
                ]);
                out.push(Change {
                    kind: change.kind,
                    row,
                });
            }
        }
        Ok(out)
    }
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    /// COUNT(*) / COUNT(x)
    Count,
    /// COUNT(DISTINCT x)
    CountDistinct,
    /// SUM
    Sum,
    /// AVG
    Avg,
    /// MIN
    Min,
    /// MAX
    Max,
    /// FIRST_VALUE
    First,
    /// LAST_VALUE
    Last,
}

/// One aggregate call of a GROUP BY.
#[derive(Debug, Clone)]
pub struct AggCall {
    /// The function.
    pub kind: AggKind,
    /// Its argument (None for COUNT(*)).
    pub arg: Option<Expr>,
    /// `FILTER (WHERE ...)`.
    pub filter: Option<Expr>,
    /// The result type.
    pub data_type: DataType,
}

/// An accumulator.
#[derive(Debug, Clone, PartialEq)]
enum Acc {
    Count(i64),
    Sum {
        sum: Value,
        n: i64,
    },
    Avg {
        sum: f64,
        n: i64,
    },
    /// MIN/MAX/FIRST/LAST: every value with its count, so a retraction can remove one.
    Values(BTreeMap<Value, i64>),
    /// FIRST_VALUE/LAST_VALUE over an append-only input.
    One(Value),
    /// MIN/MAX over an append-only input: the extreme value so far.
    Extreme(Value),
    Distinct(HashMap<Value, i64>),
}

impl AggCall {
    /// A fresh accumulator; `retractable` when the input can take rows back (MIN and MAX then
    /// keep every value with its count, else only the extreme one).
    fn new_acc(&self, retractable: bool) -> Acc {
        match self.kind {
            AggKind::Count => Acc::Count(0),
            AggKind::CountDistinct => Acc::Distinct(HashMap::default()),
            AggKind::Sum => Acc::Sum {
                sum: Value::Null,
                n: 0,
            },
            AggKind::Avg => Acc::Avg { sum: 0.0, n: 0 },
            AggKind::Min | AggKind::Max if retractable => Acc::Values(BTreeMap::new()),
            AggKind::Min | AggKind::Max => Acc::Extreme(Value::Null),
            AggKind::First | AggKind::Last => Acc::One(Value::Null),
        }
    }

    fn result(&self, acc: &Acc) -> Value {
        match acc {
            Acc::Count(n) => Value::Int(*n),
            Acc::Distinct(values) => Value::Int(values.len() as i64),
            Acc::Sum { sum, n } => {
                if *n == 0 {
                    Value::Null
                } else {
                    sum.clone()
                }
            }
            Acc::Avg { sum, n } => {
                if *n == 0 {
                    Value::Null
                } else if self.data_type.is_integer() {
                    Value::Int((*sum / *n as f64) as i64)
                } else {
                    Value::Float(*sum / *n as f64)
                }
            }
            Acc::Values(values) => match self.kind {
                AggKind::Min => values.keys().next().cloned().unwrap_or(Value::Null),
                _ => values.keys().next_back().cloned().unwrap_or(Value::Null),
            },
            Acc::One(v) | Acc::Extreme(v) => v.clone(),
        }
    }

    /// Adds (or retracts) `v`.
    fn update(&self, acc: &mut Acc, v: Option<Value>, adds: bool) {
        let sign = if adds { 1 } else { -1 };
        match acc {
            Acc::Count(n) => {
                if v.as_ref().is_none_or(|v| !v.is_null()) {
                    *n += sign;
                }
            }
            Acc::Distinct(values) => {
                if let Some(v) = v.filter(|v| !v.is_null()) {
                    let count = values.entry(v.clone()).or_insert(0);
                    *count += sign;
                    if *count <= 0 {
                        values.remove(&v);
                    }
                }
            }
            Acc::Sum { sum, n } => {
                if let Some(v) = v.filter(|v| !v.is_null()) {
                    *n += sign;
                    *sum = match (&*sum, &v) {
                        (Value::Null, _) if adds => v,
                        (Value::Null, Value::Int(i)) => Value::Int(-i),
                        (Value::Null, other) => Value::Float(-other.as_f64().unwrap_or(0.0)),
                        (Value::Int(a), Value::Int(b)) => Value::Int(a + sign * b),
                        (a, b) => Value::Float(
                            a.as_f64().unwrap_or(0.0) + sign as f64 * b.as_f64().unwrap_or(0.0),
                        ),
                    };
                }
            }
            Acc::Avg { sum, n } => {
                if let Some(x) = v.as_ref().and_then(Value::as_f64) {
                    *n += sign;
                    *sum += sign as f64 * x;
                }
            }
            Acc::Values(values) => {
                if let Some(v) = v.filter(|v| !v.is_null()) {
                    let count = values.entry(v.clone()).or_insert(0);
                    *count += sign;
                    if *count <= 0 {
                        values.remove(&v);
                    }
                }
            }
            Acc::Extreme(current) => {
                if let Some(v) = v.filter(|v| !v.is_null())
                    && (current.is_null()
                        || (self.kind == AggKind::Min && v < *current)
                        || (self.kind == AggKind::Max && v > *current))
                {
                    *current = v;
                }
            }
            Acc::One(current) => {
                if let Some(v) = v.filter(|v| !v.is_null())
                    && adds
                    && (self.kind == AggKind::Last || current.is_null())
                {
                    *current = v;
                }
            }
        }
    }

    /// Merges `other` into `acc` (session windows merging).
    fn merge(&self, acc: &mut Acc, other: Acc) {
        match (acc, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::Distinct(a), Acc::Distinct(b)) => {
                for (v, n) in b {
                    *a.entry(v).or_insert(0) += n;
                }
            }
            (Acc::Sum { sum, n }, Acc::Sum { sum: s2, n: n2 }) if n2 > 0 => {
                *sum = match (&*sum, &s2) {
                    (Value::Null, _) => s2,
                    (Value::Int(a), Value::Int(b)) => Value::Int(a + b),
                    (a, b) => Value::Float(a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0)),
                };
                *n += n2;
            }
            (Acc::Avg { sum, n }, Acc::Avg { sum: s2, n: n2 }) => {
                *sum += s2;
                *n += n2;
            }
            (Acc::Values(a), Acc::Values(b)) => {
                for (v, n) in b {
                    *a.entry(v).or_insert(0) += n;
                }
            }
            (Acc::Extreme(a), Acc::Extreme(b))
                if !b.is_null()
                    && (a.is_null()
                        || (self.kind == AggKind::Min && b < *a)
                        || (self.kind == AggKind::Max && b > *a)) =>
            {
                *a = b;
            }
            (Acc::One(a), Acc::One(b))
                if !b.is_null() && (self.kind == AggKind::Last || a.is_null()) =>
            {
                *a = b;
            }
            _ => {}
        }
    }
}

/// An accumulator as state JSON (`{"count": n}`, `{"sum": v, "n": n}`, ...; read by
/// [`acc_from_json`]).
struct AccState<'a>(&'a Acc);

impl serde::Serialize for AccState<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        fn counted<'v>(
            values: impl Iterator<Item = (&'v Value, &'v i64)>,
        ) -> Vec<(State<'v>, i64)> {
            values.map(|(v, n)| (State(v), *n)).collect()
        }
        let mut map = s.serialize_map(None)?;
        match self.0 {
            Acc::Count(n) => map.serialize_entry("count", n)?,
            Acc::Distinct(values) => map.serialize_entry("distinct", &counted(values.iter()))?,
            Acc::Sum { sum, n } => {
                map.serialize_entry("sum", &State(sum))?;
                map.serialize_entry("n", n)?;
            }
            Acc::Avg { sum, n } => {
                map.serialize_entry("avg", sum)?;
                map.serialize_entry("n", n)?;
            }
            Acc::Values(values) => map.serialize_entry("values", &counted(values.iter()))?,
            Acc::One(v) => map.serialize_entry("one", &State(v))?,
            Acc::Extreme(v) => map.serialize_entry("extreme", &State(v))?,
        }
        map.end()
    }
}

/// A group's state: its row count, accumulators and the row it last emitted.
#[derive(serde::Serialize)]
struct GroupState<'a> {
    rows: i64,
    accs: Vec<AccState<'a>>,
    emitted: Option<StateRow<'a>>,
}

impl<'a> GroupState<'a> {
    fn of(g: &'a Group) -> Self {
        GroupState {
            rows: g.rows,
            accs: g.accs.iter().map(AccState).collect(),
            emitted: g.emitted.as_deref().map(StateRow),
        }
    }
}

/// A session window's state: its bounds and its group.
#[derive(serde::Serialize)]
struct SessionState<'a> {
    start: i64,
    end: i64,
    #[serde(flatten)]
    group: GroupState<'a>,
}

fn acc_from_json(json: &Json) -> Option<Acc> {
    let pairs = |v: &Json| -> Option<Vec<(Value, i64)>> {
        v.as_array()?
            .iter()
            .map(|p| Some((decode_state(p.get(0)?)?, p.get(1)?.as_i64()?)))
            .collect()
    };
    if let Some(n) = json.get("count") {
        return Some(Acc::Count(n.as_i64()?));
    }
    if let Some(v) = json.get("distinct") {
        return Some(Acc::Distinct(pairs(v)?.into_iter().collect()));
    }
    if let Some(s) = json.get("sum") {
        return Some(Acc::Sum {
            sum: decode_state(s)?,
            n: json.get("n")?.as_i64()?,
        });
    }
    if let Some(s) = json.get("avg") {
        return Some(Acc::Avg {
            sum: s.as_f64()?,
            n: json.get("n")?.as_i64()?,
        });
    }
    if let Some(v) = json.get("values") {
        return Some(Acc::Values(pairs(v)?.into_iter().collect()));
    }
    if let Some(v) = json.get("one") {
        return Some(Acc::One(decode_state(v)?));
    }
    if let Some(v) = json.get("extreme") {
        return Some(Acc::Extreme(decode_state(v)?));
    }
    None
}

/// SESSION windows of an aggregate: sessions of `keys` by the time in column `time`.
#[derive(Debug, Clone)]
pub struct Session {
    /// The time column.
    pub time: usize,
    /// The gap that closes a session.
    pub gap_ms: i64,
    /// PARTITION BY columns.
    pub keys: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
struct Group {
    accs: Vec<Acc>,
    /// Rows added minus rows retracted.
    rows: i64,
    /// The row last emitted (updating aggregates).
    emitted: Option<Vec<Value>>,
}

#[derive(Debug, Clone, PartialEq)]
struct SessionWindow {
    start: i64,
    end: i64,
    group: Group,
}

/// GROUP BY: over windows (append-only results, final when the watermark passes the window's
/// end; late rows dropped and counted), or not (an updating result, a change per group a batch
/// touched).
pub struct Aggregate {
    keys: Vec<Expr>,
    calls: Vec<AggCall>,
    /// Positions of window_start and window_end among the keys.
    window: Option<(usize, usize)>,
    session: Option<Session>,
    groups: HashMap<Vec<Value>, Group>,
    /// Windowed: the keys of the groups of each window end.
    by_end: BTreeMap<i64, HashSet<Vec<Value>>>,
    /// Sessions by their key (the group key without the window columns).
    sessions: HashMap<Vec<Value>, Vec<SessionWindow>>,
    dirty: HashSet<Vec<Value>>,
    /// Keys whose state the changelog holds: a group made and gone between two snapshots
    /// (a window opened and fired) writes nothing.
    persisted: HashSet<Vec<Value>>,
    input_updating: bool,
    touched: Touched,
    /// Windows of processing time: final when the wall clock passes their end, not the
    /// watermark; no row is late.
    processing_time: bool,
}

impl Aggregate {
    /// An aggregate grouping by `keys` computing `calls`.
    pub fn new(
        keys: Vec<Expr>,
        calls: Vec<AggCall>,
        window: Option<(usize, usize)>,
        session: Option<Session>,
        input_updating: bool,
    ) -> Aggregate {
        Aggregate {
            keys,
            calls,
            window,
            session,
            groups: HashMap::default(),
            by_end: BTreeMap::new(),
            sessions: HashMap::default(),
            dirty: HashSet::new(),
            persisted: HashSet::new(),
            input_updating,
            touched: Touched::default(),
            processing_time: false,
        }
    }

    /// Its windows are of processing time.
    pub fn processing_time(mut self) -> Aggregate {
        self.processing_time = true;
        self
    }

    fn new_group(&self) -> Group {
        Group {
            accs: self
                .calls
                .iter()
                .map(|c| c.new_acc(self.input_updating))
                .collect(),
            rows: 0,
            emitted: None,
        }
    }

    fn output(&self, key: &[Value], group: &Group) -> Vec<Value> {
        let mut row = key.to_vec();
        row.extend(
            self.calls
                .iter()
                .zip(&group.accs)
                .map(|(call, acc)| call.result(acc)),
        );
        row
    }

    /// Evaluates the arguments of each call on `row` (None: the call's FILTER excludes it).
    fn args(&self, row: &[Value], eval: &Context) -> Result<Vec<Option<Option<Value>>>, SqlError> {
        self.calls
            .iter()
            .map(|call| {
                if let Some(filter) = &call.filter
                    && !filter.eval(row, eval)?.is_true()
                {
                    return Ok(None);
                }
                Ok(Some(match &call.arg {
                    Some(e) => Some(e.eval(row, eval)?),
                    None => None,
                }))
            })
            .collect()
    }

    fn accumulate(&self, group: &mut Group, args: Vec<Option<Option<Value>>>, adds: bool) {
        group.rows += if adds { 1 } else { -1 };
        for ((call, acc), arg) in self.calls.iter().zip(group.accs.iter_mut()).zip(args) {
            if let Some(v) = arg {
                call.update(acc, v, adds);
            }
        }
    }

    fn process_session(
        &mut self,
        input: Vec<Change>,
        ctx: &mut OpCtx,
    ) -> Result<Vec<Change>, SqlError> {
        let Some(session) = self.session.clone() else {
            return Ok(Vec::new());
        };
        let Some((ws, we)) = self.window else {
            return Ok(Vec::new());
        };
        let eval = ctx.eval_context();
        for change in input {
            let Value::Timestamp(t) = change.row.get(session.time).cloned().unwrap_or(Value::Null)
            else {
                continue;
            };
            if ctx.watermark.is_some_and(|w| t + session.gap_ms - 1 <= w) {
                ctx.late_dropped += 1;
                continue;
            }
            let mut key = Vec::with_capacity(self.keys.len());
            let mut failed = false;
            for (i, k) in self.keys.iter().enumerate() {
                if i == ws || i == we {
                    key.push(Value::Null);
                    continue;
                }
                match k.eval(&change.row, &eval) {
                    Ok(v) => key.push(v),
                    Err(e) => {
                        ctx.failed(e)?;
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                continue;
            }
            let args = match self.args(&change.row, &eval) {
                Ok(a) => a,
                Err(e) => {
                    ctx.failed(e)?;
                    continue;
                }
            };
            let mut group = self.new_group();
            self.accumulate(&mut group, args, true);
            let mut merged = SessionWindow {
                start: t,
                end: t + session.gap_ms,
                group,
            };
            let sessions = self.sessions.entry(key.clone()).or_default();
            let mut kept = Vec::with_capacity(sessions.len() + 1);
            for s in sessions.drain(..) {
                if s.start < merged.end && merged.start < s.end {
                    merged.start = merged.start.min(s.start);
                    merged.end = merged.end.max(s.end);
                    for ((call, acc), other) in self
                        .calls
                        .iter()
                        .zip(merged.group.accs.iter_mut())
                        .zip(s.group.accs)
                    {
                        call.merge(acc, other);
                    }
                    merged.group.rows += s.group.rows;
                } else {
                    kept.push(s);
                }
            }
            kept.push(merged);
            kept.sort_by_key(|s| s.start);
            *sessions = kept;
            self.dirty.insert(key);
        }
        Ok(Vec::new())
    }
}

impl Operator for Aggregate {
    fn describe(&self) -> String {
        let calls: Vec<String> = self.calls.iter().map(|c| format!("{:?}", c.kind)).collect();
        match (&self.session, self.window) {
            (Some(s), _) => format!(
                "SessionWindowAggregate(gap={} ms, keys={}, aggs=[{}])",
                s.gap_ms,
                self.keys.len(),
                calls.join(", ")
            ),
            (None, Some(_)) => format!(
                "WindowAggregate(keys={}, aggs=[{}], emit=on window end)",
                self.keys.len(),
                calls.join(", ")
            ),
            (None, None) => format!(
                "GroupAggregate(keys={}, aggs=[{}], changelog=upsert)",
                self.keys.len(),
                calls.join(", ")
            ),
        }
    }

    fn process(&mut self, input: Vec<Change>, ctx: &mut OpCtx) -> Result<Vec<Change>, SqlError> {
        if self.session.is_some() {
            return self.process_session(input, ctx);
        }
        let eval = ctx.eval_context();
        let mut touched: Vec<Vec<Value>> = Vec::new();
        for change in input {
            let key = match self
                .keys
                .iter()
                .map(|k| k.eval(&change.row, &eval))
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(k) => k,
                Err(e) => {
                    ctx.failed(e)?;
                    continue;
                }
            };
            let window_end = match self.window {
                Some((_, end)) => match key.get(end) {
                    Some(Value::Timestamp(e)) => Some(*e),
                    _ => continue,
                },
                None => None,
            };
            if let (Some(end), Some(w)) = (window_end, ctx.watermark)
                && end - 1 <= w
                && !self.processing_time
            {
                ctx.late_dropped += 1;
                continue;
            }
            let args = match self.args(&change.row, &eval) {
                Ok(a) => a,
                Err(e) => {
                    ctx.failed(e)?;
                    continue;
                }
            };
            let adds = change.kind.adds();
            if !self.groups.contains_key(&key) {
                if !adds {
                    continue; // a retraction of a row never counted
                }
                let group = self.new_group();
                self.groups.insert(key.clone(), group);
                if let Some(end) = window_end {
                    self.by_end.entry(end).or_default().insert(key.clone());
                }
            }
            let mut group = self.groups.remove(&key).unwrap_or_else(|| self.new_group());
            self.accumulate(&mut group, args, adds);
            if self.window.is_none() {
                self.touched.touch(&key, ctx.now_ms);
            }
            self.groups.insert(key.clone(), group);
            if self.dirty.insert(key.clone()) || self.window.is_none() {
                touched.push(key);
            }
        }
        if self.window.is_some() {
            return Ok(Vec::new());
        }
        // Updating: one change per group this batch touched.
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for key in touched {
            if !seen.insert(key.clone()) {
                continue;
            }
            let Some(group) = self.groups.get(&key) else {
                continue;
            };
            let now = (group.rows > 0).then(|| self.output(&key, group));
            let before = group.emitted.clone();
            match (&before, &now) {
                (None, Some(row)) => out.push(Change::insert(row.clone())),
                (Some(old), Some(row)) if old != row => {
                    out.push(Change {
                        kind: Kind::UpdateBefore,
                        row: old.clone(),
                    });
                    out.push(Change {
                        kind: Kind::UpdateAfter,
                        row: row.clone(),
                    });
                }
                (Some(old), None) => out.push(Change {
                    kind: Kind::Delete,
                    row: old.clone(),
                }),
                _ => {}
            }
            if now.is_none() {
                self.groups.remove(&key);
            } else if let Some(group) = self.groups.get_mut(&key) {
                group.emitted = now;
            }
        }
        Ok(out)
    }

    fn on_processing_time(
        &mut self,
        now_ms: i64,
        ctx: &mut OpCtx,
    ) -> Result<Vec<Change>, SqlError> {
        if !self.processing_time {
            return Ok(Vec::new());
        }
        // A window [start, end) of processing time is final once the clock reaches its end:
        // as an event-time window is once the watermark reaches end - 1.
        self.processing_time = false;
        let fired = self.on_watermark(now_ms - 1, ctx);
        self.processing_time = true;
        fired
    }

    fn on_watermark(&mut self, watermark: i64, _ctx: &mut OpCtx) -> Result<Vec<Change>, SqlError> {
        let mut out = Vec::new();
        if self.processing_time {
            return Ok(out); // its windows close by the clock
        }
        if let (Some(session), Some((ws, we))) = (&self.session, self.window) {
            let _ = session;
            let mut emptied = Vec::new();
            for (key, sessions) in self.sessions.iter_mut() {
                let mut fired = false;
                sessions.retain(|s| {
                    if s.end - 1 <= watermark {
                        let mut k = key.clone();
                        k[ws] = Value::Timestamp(s.start);
                        k[we] = Value::Timestamp(s.end);
                        let mut row = k;
                        row.extend(
                            self.calls
                                .iter()
                                .zip(&s.group.accs)
                                .map(|(call, acc)| call.result(acc)),
                        );
                        out.push(Change::insert(row));
                        fired = true;
                        false
                    } else {
                        true
                    }
                });
                if fired {
                    self.dirty.insert(key.clone());
                }
                if sessions.is_empty() {
                    emptied.push(key.clone());
                }
            }
            for key in emptied {
                self.sessions.remove(&key);
            }
            out.sort_by(|a, b| a.row.cmp(&b.row));
            return Ok(out);
        }
        if self.window.is_none() {
            return Ok(out);
        }
        // Windows whose end - 1 <= watermark are final.
        let ends: Vec<i64> = self
            .by_end
            .range(..=watermark.saturating_add(1))
            .map(|(e, _)| *e)
            .filter(|e| e - 1 <= watermark)
            .collect();
        for end in ends {
            let Some(keys) = self.by_end.remove(&end) else {
                continue;
            };
            let mut keys: Vec<Vec<Value>> = keys.into_iter().collect();
            keys.sort();
            for key in keys {
                if let Some(group) = self.groups.remove(&key) {
                    if group.rows > 0 {
                        out.push(Change::insert(self.output(&key, &group)));
                    }
                    self.dirty.insert(key);
                }
            }
        }
        Ok(out)
    }

    fn snapshot(&mut self) -> Vec<(String, Option<String>)> {
        let mut out = Vec::with_capacity(self.dirty.len());
        let dirty: Vec<Vec<Value>> = self.dirty.drain().collect();
        for key in dirty {
            let value = if self.session.is_some() {
                self.sessions.get(&key).map(|sessions| {
                    state_text(
                        &sessions
                            .iter()
                            .map(|s| SessionState {
                                start: s.start,
                                end: s.end,
                                group: GroupState::of(&s.group),
                            })
                            .collect::<Vec<_>>(),
                    )
                })
            } else {
                self.groups
                    .get(&key)
                    .map(|g| state_text(&GroupState::of(g)))
            };
            if value.is_some() {
                self.persisted.insert(key.clone());
            } else if !self.persisted.remove(&key) {
                continue;
            }
            out.push((state_text(&StateRow(&key)), value));
        }
        out
    }

    fn restore(&mut self, key: &str, value: &Json) -> Result<(), SqlError> {
        let bad = || SqlError::Runtime(format!("unreadable aggregate state for key {key}"));
        let key: Json = serde_json::from_str(key).map_err(|_| bad())?;
        let key: Vec<Value> = key
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(decode_state)
            .collect::<Option<_>>()
            .ok_or_else(bad)?;
        let group_of = |v: &Json| -> Option<Group> {
            Some(Group {
                rows: v.get("rows")?.as_i64()?,
                accs: v
                    .get("accs")?
                    .as_array()?
                    .iter()
                    .map(acc_from_json)
                    .collect::<Option<_>>()?,
                emitted: match v.get("emitted") {
                    Some(Json::Array(row)) => {
                        Some(row.iter().map(decode_state).collect::<Option<_>>()?)
                    }
                    _ => None,
                },
            })
        };
        if self.session.is_some() {
            let sessions = value
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|s| {
                    Some(SessionWindow {
                        start: s.get("start")?.as_i64()?,
                        end: s.get("end")?.as_i64()?,
                        group: group_of(s)?,
                    })
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad)?;
            self.persisted.insert(key.clone());
            self.sessions.insert(key, sessions);
            return Ok(());
        }
        let group = group_of(value).ok_or_else(bad)?;
        if let Some((_, end)) = self.window
            && let Some(Value::Timestamp(e)) = key.get(end)
        {
            self.by_end.entry(*e).or_default().insert(key.clone());
        }
        self.persisted.insert(key.clone());
        self.groups.insert(key, group);
        Ok(())
    }

    fn state_entries(&self) -> usize {
        self.groups.len() + self.sessions.values().map(Vec::len).sum::<usize>()
    }

    fn expire_idle(&mut self, before_ms: i64) {
        for key in self.touched.idle(before_ms) {
            if self.groups.remove(&key).is_some() {
                self.dirty.insert(key);
            }
        }
    }
}

/// An upsert table read as a changelog (Flink's ChangelogNormalize): each record of a key
/// replaces the key's previous row — an insert the first time, an update after that — and a
/// tombstone deletes it. Keeps the last row of every key.
pub struct Normalize {
    key: Vec<usize>,
    rows: HashMap<Vec<Value>, Vec<Value>>,
    dirty: HashSet<Vec<Value>>,
    touched: Touched,
}

impl Normalize {
    /// Normalizes by the key columns `key`.
    pub fn new(key: Vec<usize>) -> Normalize {
        Normalize {
            key,
            rows: HashMap::default(),
            dirty: HashSet::new(),
            touched: Touched::default(),
        }
    }
}

impl Operator for Normalize {
    fn describe(&self) -> String {
        format!("ChangelogNormalize(key={:?})", self.key)
    }

    fn process(&mut self, input: Vec<Change>, ctx: &mut OpCtx) -> Result<Vec<Change>, SqlError> {
        let mut out = Vec::with_capacity(input.len());
        for change in input {
            let key: Vec<Value> = self.key.iter().map(|i| change.row[*i].clone()).collect();
            self.touched.touch(&key, ctx.now_ms);
            let before = self.rows.get(&key).cloned();
            if change.kind.adds() {
                match before {
                    Some(old) if old == change.row => continue,
                    Some(old) => {
                        out.push(Change {
                            kind: Kind::UpdateBefore,
                            row: old,
                        });
                        out.push(Change {
                            kind: Kind::UpdateAfter,
                            row: change.row.clone(),
                        });
                    }
                    None => out.push(Change::insert(change.row.clone())),
                }
                self.rows.insert(key.clone(), change.row);
            } else if let Some(old) = before {
                out.push(Change {
                    kind: Kind::Delete,
                    row: old,
                });
                self.rows.remove(&key);
            }
            self.dirty.insert(key);
        }
        Ok(out)
    }

    fn snapshot(&mut self) -> Vec<(String, Option<String>)> {
        self.dirty
            .drain()
            .map(|key| {
                let value = self.rows.get(&key).map(|row| state_text(&StateRow(row)));
                (state_text(&StateRow(&key)), value)
            })
            .collect()
    }

    fn restore(&mut self, key: &str, value: &Json) -> Result<(), SqlError> {
        let bad = || SqlError::Runtime(format!("unreadable normalize state for key {key}"));
        let decode = |json: &Json| -> Option<Vec<Value>> {
            json.as_array()?.iter().map(decode_state).collect()
        };
        let key: Json = serde_json::from_str(key).map_err(|_| bad())?;
        let key = decode(&key).ok_or_else(bad)?;
        let row = decode(value).ok_or_else(bad)?;
        self.rows.insert(key, row);
        Ok(())
    }

    fn state_entries(&self) -> usize {
        self.rows.len()
    }

    fn expire_idle(&mut self, before_ms: i64) {
        for key in self.touched.idle(before_ms) {
            if self.rows.remove(&key).is_some() {
                self.dirty.insert(key);
            }
        }
    }
}

/// A row with its sort key.
type Ranked = (Vec<Value>, Vec<Value>);

/// `ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)` filtered to the first `limit` rows:
/// Flink's Top-N (and, with a limit of 1, deduplication). Each batch's changes to a
/// partition's first rows come out as the difference of before and after: a row that left
/// them is retracted, one that entered is inserted, one whose number changed is updated. With
/// `expire` (the partition key holds a window's end), a partition is dropped once the
/// watermark passes its window, and its rows only append.
pub struct TopN {
    partition: Vec<Expr>,
    order: Vec<(Expr, bool)>,
    limit: usize,
    /// Keep every row (an updating input can retract one of the first rows).
    keep_all: bool,
    expire: Option<usize>,
    /// Among rows that sort equal, the latest arrival first (Flink's keep-last deduplication).
    last_wins: bool,
    /// Each partition's rows (sort key, row) in order.
    partitions: HashMap<Vec<Value>, Vec<Ranked>>,
    dirty: HashSet<Vec<Value>>,
    touched: Touched,
}

impl TopN {
    /// A Top-N: `order` is (expression, descending).
    pub fn new(
        partition: Vec<Expr>,
        order: Vec<(Expr, bool)>,
        limit: usize,
        keep_all: bool,
        expire: Option<usize>,
        last_wins: bool,
    ) -> TopN {
        TopN {
            partition,
            order,
            limit,
            keep_all,
            expire,
            last_wins,
            partitions: HashMap::default(),
            dirty: HashSet::new(),
            touched: Touched::default(),
        }
    }

    fn compare(&self, a: &[Value], b: &[Value]) -> std::cmp::Ordering {
        for ((_, descending), (x, y)) in self.order.iter().zip(a.iter().zip(b)) {
            let c = x.total_cmp(y);
            let c = if *descending { c.reverse() } else { c };
            if c != std::cmp::Ordering::Equal {
                return c;
            }
        }
        std::cmp::Ordering::Equal
    }

    fn first_rows(&self, key: &[Value]) -> Vec<Vec<Value>> {
        self.partitions
            .get(key)
            .map(|rows| {
                rows.iter()
                    .take(self.limit)
                    .map(|(_, r)| r.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn numbered(row: &[Value], n: usize) -> Vec<Value> {
        let mut out = row.to_vec();
        out.push(Value::Int(n as i64 + 1));
        out
    }
}

impl Operator for TopN {
    fn describe(&self) -> String {
        format!(
            "Rank(ROW_NUMBER, partition keys={}, order keys={}, rows={}{})",
            self.partition.len(),
            self.order.len(),
            self.limit,
            if self.expire.is_some() {
                ", per window"
            } else {
                ""
            }
        )
    }

    fn process(&mut self, input: Vec<Change>, ctx: &mut OpCtx) -> Result<Vec<Change>, SqlError> {
        let eval = ctx.eval_context();
        let mut before: HashMap<Vec<Value>, Vec<Vec<Value>>> = HashMap::default();
        let mut order_of_keys = Vec::new();
        for change in input {
            let key: Vec<Value> = self
                .partition
                .iter()
                .map(|e| e.eval(&change.row, &eval))
                .collect::<Result<_, _>>()?;
            if let Some(end) = self.expire
                && let (Some(Value::Timestamp(e)), Some(w)) = (key.get(end), ctx.watermark)
                && e - 1 <= w
            {
                ctx.late_dropped += 1;
                continue;
            }
            let sort: Vec<Value> = self
                .order
                .iter()
                .map(|(e, _)| e.eval(&change.row, &eval))
                .collect::<Result<_, _>>()?;
            if self.expire.is_none() {
                self.touched.touch(&key, ctx.now_ms);
            }
            if !before.contains_key(&key) {
                before.insert(key.clone(), self.first_rows(&key));
                order_of_keys.push(key.clone());
            }
            let limit = self.limit;
            let keep_all = self.keep_all;
            let mut rows = self.partitions.remove(&key).unwrap_or_default();
            if change.kind.adds() {
                // After every row that sorts before or equal to it (ties: arrival order), or,
                // keeping the last, before the equal ones.
                let at = if self.last_wins {
                    rows.partition_point(|(s, _)| self.compare(s, &sort).is_lt())
                } else {
                    rows.partition_point(|(s, _)| self.compare(s, &sort).is_le())
                };
                rows.insert(at, (sort, change.row));
                if !keep_all {
                    rows.truncate(limit);
                }
            } else if let Some(pos) = rows.iter().position(|(_, r)| *r == change.row) {
                rows.remove(pos);
            }
            if rows.is_empty() {
                self.partitions.remove(&key);
            } else {
                self.partitions.insert(key.clone(), rows);
            }
            self.dirty.insert(key);
        }
        let mut out = Vec::new();
        for key in order_of_keys {
            let old = before.remove(&key).unwrap_or_default();
            let new = self.first_rows(&key);
            for i in 0..old.len().max(new.len()) {
                match (old.get(i), new.get(i)) {
                    (Some(a), Some(b)) if a == b => {}
                    (Some(a), Some(b)) => {
                        out.push(Change {
                            kind: Kind::UpdateBefore,
                            row: TopN::numbered(a, i),
                        });
                        out.push(Change {
                            kind: Kind::UpdateAfter,
                            row: TopN::numbered(b, i),
                        });
                    }
                    (Some(a), None) => out.push(Change {
                        kind: Kind::Delete,
                        row: TopN::numbered(a, i),
                    }),
                    (None, Some(b)) => out.push(Change::insert(TopN::numbered(b, i))),
                    (None, None) => {}
                }
            }
        }
        Ok(out)
    }

    fn on_watermark(&mut self, watermark: i64, _ctx: &mut OpCtx) -> Result<Vec<Change>, SqlError> {
        if let Some(end) = self.expire {
            let gone: Vec<Vec<Value>> = self
                .partitions
                .keys()
                .filter(|k| matches!(k.get(end), Some(Value::Timestamp(e)) if e - 1 <= watermark))
                .cloned()
                .collect();
            for key in gone {
                self.partitions.remove(&key);
                self.dirty.insert(key);
            }
        }
        Ok(Vec::new())
    }

    fn snapshot(&mut self) -> Vec<(String, Option<String>)> {
        let dirty: Vec<Vec<Value>> = self.dirty.drain().collect();
        dirty
            .into_iter()
            .map(|key| {
                let value = self.partitions.get(&key).map(|rows| {
                    state_text(
                        &rows
                            .iter()
                            .map(|(s, r)| (StateRow(s), StateRow(r)))
                            .collect::<Vec<_>>(),
                    )
                });
                (state_text(&StateRow(&key)), value)
            })
            .collect()
    }

    fn restore(&mut self, key: &str, value: &Json) -> Result<(), SqlError> {
        let bad = || SqlError::Runtime(format!("unreadable rank state for key {key}"));
        let values =
            |j: &Json| -> Option<Vec<Value>> { j.as_array()?.iter().map(decode_state).collect() };
        let key: Json = serde_json::from_str(key).map_err(|_| bad())?;
        let key = values(&key).ok_or_else(bad)?;
        let rows = value
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|pair| Some((values(pair.get(0)?)?, values(pair.get(1)?)?)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        self.partitions.insert(key, rows);
        Ok(())
    }

    fn state_entries(&self) -> usize {
        self.partitions.values().map(Vec::len).sum()
    }

    fn expire_idle(&mut self, before_ms: i64) {
        for key in self.touched.idle(before_ms) {
            if self.partitions.remove(&key).is_some() {
                self.dirty.insert(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Value {
        Value::Timestamp(s * 1000)
    }

    #[test]
    fn windows_are_assigned_as_flink_assigns_them() {
        assert_eq!(
            WindowAssigner::windows(WindowKind::Tumble { size: 10 }, 13),
            vec![(10, 20)]
        );
        assert_eq!(
            WindowAssigner::windows(WindowKind::Tumble { size: 10 }, -1),
            vec![(-10, 0)]
        );
        assert_eq!(
            WindowAssigner::windows(WindowKind::Hop { slide: 5, size: 10 }, 13),
            vec![(5, 15), (10, 20)]
        );
        assert_eq!(
            WindowAssigner::windows(WindowKind::Cumulate { step: 5, size: 15 }, 7),
            vec![(0, 10), (0, 15)]
        );
    }

    fn tumbling_count() -> (WindowAssigner, Aggregate) {
        // rows: (key, ts) → window columns at 2, 3, 4
        let assigner = WindowAssigner::new(WindowKind::Tumble { size: 10_000 }, 1);
        let aggregate = Aggregate::new(
            vec![Expr::Column(0), Expr::Column(2), Expr::Column(3)],
            vec![AggCall {
                kind: AggKind::Count,
                arg: None,
                filter: None,
                data_type: DataType::BigInt,
            }],
            Some((1, 2)),
            None,
            false,
        );
        (assigner, aggregate)
    }

    #[test]
    fn window_results_come_when_the_watermark_passes_and_late_rows_are_dropped() {
        let (mut assigner, mut aggregate) = tumbling_count();
        let mut ctx = OpCtx::default();
        let rows = vec![
            Change::insert(vec![Value::str("a"), ts(1)]),
            Change::insert(vec![Value::str("a"), ts(9)]),
            Change::insert(vec![Value::str("b"), ts(12)]),
        ];
        let assigned = assigner.process(rows, &mut ctx).expect("assigns");
        assert!(
            aggregate
                .process(assigned, &mut ctx)
                .expect("ok")
                .is_empty()
        );
        assert!(
            aggregate
                .on_watermark(9_998, &mut ctx)
                .expect("ok")
                .is_empty()
        );
        let fired = aggregate.on_watermark(9_999, &mut ctx).expect("ok");
        assert_eq!(fired.len(), 1);
        assert_eq!(
            fired[0].row,
            vec![Value::str("a"), ts(0), ts(10), Value::Int(2)]
        );
        ctx.watermark = Some(9_999);
        let late = assigner
            .process(vec![Change::insert(vec![Value::str("a"), ts(5)])], &mut ctx)
            .expect("assigns");
        aggregate.process(late, &mut ctx).expect("ok");
        assert_eq!(ctx.late_dropped, 1);
    }

    #[test]
    fn state_survives_a_snapshot_and_restore() {
        let (mut assigner, mut aggregate) = tumbling_count();
        let mut ctx = OpCtx::default();
        let assigned = assigner
            .process(
                vec![
                    Change::insert(vec![Value::str("a"), ts(1)]),
                    Change::insert(vec![Value::str("a"), ts(2)]),
                ],
                &mut ctx,
            )
            .expect("assigns");
        aggregate.process(assigned, &mut ctx).expect("ok");
        let (_, mut restored) = tumbling_count();
        for (key, value) in aggregate.snapshot() {
            let value: Json = serde_json::from_str(&value.expect("present")).expect("JSON");
            restored.restore(&key, &value).expect("restores");
        }
        let fired = restored.on_watermark(20_000, &mut ctx).expect("ok");
        assert_eq!(fired[0].row[3], Value::Int(2));
        // A fired window's state is deleted in the next snapshot.
        aggregate.on_watermark(20_000, &mut ctx).expect("ok");
        assert_eq!(aggregate.snapshot()[0].1, None);
    }

    #[test]
    fn an_updating_aggregate_retracts_its_previous_row() {
        let mut aggregate = Aggregate::new(
            vec![Expr::Column(0)],
            vec![AggCall {
                kind: AggKind::Sum,
                arg: Some(Expr::Column(1)),
                filter: None,
                data_type: DataType::BigInt,
            }],
            None,
            None,
            false,
        );
        let mut ctx = OpCtx::default();
        let first = aggregate
            .process(
                vec![Change::insert(vec![Value::str("a"), Value::Int(2)])],
                &mut ctx,
            )
            .expect("ok");
        assert_eq!(
            first,
            vec![Change::insert(vec![Value::str("a"), Value::Int(2)])]
        );
        let second = aggregate
            .process(
                vec![Change::insert(vec![Value::str("a"), Value::Int(3)])],
                &mut ctx,
            )
            .expect("ok");
        assert_eq!(second.len(), 2);
        assert_eq!(second[0].kind, Kind::UpdateBefore);
        assert_eq!(second[1].row, vec![Value::str("a"), Value::Int(5)]);
        let gone = aggregate
            .process(
                vec![
                    Change {
                        kind: Kind::Delete,
                        row: vec![Value::str("a"), Value::Int(2)],
                    },
                    Change {
                        kind: Kind::Delete,
                        row: vec![Value::str("a"), Value::Int(3)],
                    },
                ],
                &mut ctx,
            )
            .expect("ok");
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].kind, Kind::Delete);
    }

    #[test]
    fn sessions_merge_and_close_after_the_gap() {
        let mut aggregate = Aggregate::new(
            vec![Expr::Column(0), Expr::Column(2), Expr::Column(3)],
            vec![AggCall {
                kind: AggKind::Count,
                arg: None,
                filter: None,
                data_type: DataType::BigInt,
            }],
            Some((1, 2)),
            Some(Session {
                time: 1,
                gap_ms: 5_000,
                keys: vec![0],
            }),
            false,
        );
        let mut ctx = OpCtx::default();
        let row = |k: &str, s: i64| {
            Change::insert(vec![
                Value::str(k),
                ts(s),
                Value::Null,
                Value::Null,
                Value::Null,
            ])
        };
        aggregate
            .process(vec![row("a", 1), row("a", 10), row("a", 4)], &mut ctx)
            .expect("ok");
        // 1 and 4 merge ([1, 9)), 10 is its own ([10, 15)).
        let fired = aggregate.on_watermark(8_999, &mut ctx).expect("ok");
        assert_eq!(fired.len(), 1);
        assert_eq!(
            fired[0].row,
            vec![Value::str("a"), ts(1), ts(9), Value::Int(2)]
        );
        assert_eq!(aggregate.state_entries(), 1);
    }
}
