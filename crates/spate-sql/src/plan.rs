//! Planning: a query's AST into a [`Flow`] — a tree of operators over source tables — with its
//! output columns, whether it updates (`GROUP BY` without a window gives an updating table)
//! and its upsert key. Flink's rules: window table functions (`TUMBLE`, `HOP`, `CUMULATE`,
//! `SESSION`) add `window_start`, `window_end` and `window_time`; grouping by `window_start`
//! and `window_end` makes a window aggregate whose rows are final when the watermark passes
//! the window's end; anything else grouped updates its rows as input arrives.

use std::sync::Arc;

use sqlparser::ast::{self, GroupByExpr, SelectItem, SetExpr, TableFactor};

use crate::catalog::Table;
use crate::errors::SqlError;
use crate::exec::{
    AggCall, AggKind, Aggregate, Change, Filter, Normalize, OpCtx, Operator, Origin, Project, TopN,
    WindowAssigner, WindowKind,
};
use crate::expr::{self, Expr, Scope, ScopeColumn, Typed, function_args, function_name};
use crate::join::{Expiry, Join, JoinType, TemporalJoin};
use crate::parse::TABLE_ARG;
use crate::types::{DataType, Field, Value};

/// A planned SELECT: its flow, output scope, whether it updates, its key, and the positions
/// of its window_start and window_end columns (window attributes, even renamed).
type SelectOut = (Flow, Scope, bool, Vec<usize>, Option<(usize, usize)>);

/// Looks tables up by name (declared, or found in the schema registry).
pub trait Tables {
    /// The table `name`.
    fn table(&self, name: &str) -> Result<Arc<Table>, SqlError>;
    /// The query of the (logical) view `name`, if there is one.
    fn view(&self, _name: &str) -> Option<ast::Query> {
        None
    }
}

/// What a plan looked up, kept so the same query plans again without the catalog (once per
/// task of a job: each task has its own operators).
#[derive(Clone, Default)]
pub struct Snapshot {
    tables: std::collections::HashMap<String, Arc<Table>>,
    views: std::collections::HashMap<String, ast::Query>,
}

impl Tables for Snapshot {
    fn table(&self, name: &str) -> Result<Arc<Table>, SqlError> {
        self.tables
            .get(name)
            .cloned()
            .ok_or_else(|| SqlError::NotFound {
                kind: "table",
                name: name.to_string(),
            })
    }

    fn view(&self, name: &str) -> Option<ast::Query> {
        self.views.get(name).cloned()
    }
}

/// Records the lookups of a plan into a [`Snapshot`].
pub struct Recording<'a> {
    outer: &'a dyn Tables,
    seen: std::cell::RefCell<Snapshot>,
}

impl<'a> Recording<'a> {
    /// Records lookups in `outer`.
    pub fn new(outer: &'a dyn Tables) -> Recording<'a> {
        Recording {
            outer,
            seen: std::cell::RefCell::new(Snapshot::default()),
        }
    }

    /// What was looked up.
    pub fn snapshot(self) -> Snapshot {
        self.seen.into_inner()
    }
}

impl Tables for Recording<'_> {
    fn table(&self, name: &str) -> Result<Arc<Table>, SqlError> {
        let table = self.outer.table(name)?;
        self.seen
            .borrow_mut()
            .tables
            .insert(name.to_string(), Arc::clone(&table));
        Ok(table)
    }

    fn view(&self, name: &str) -> Option<ast::Query> {
        let view = self.outer.view(name)?;
        self.seen
            .borrow_mut()
            .views
            .insert(name.to_string(), view.clone());
        Some(view)
    }
}

/// The tables of a query with a WITH clause: its common table expressions, then the catalog's.
struct Ctes<'a> {
    outer: &'a dyn Tables,
    ctes: Vec<(String, ast::Query)>,
}

impl Tables for Ctes<'_> {
    fn table(&self, name: &str) -> Result<Arc<Table>, SqlError> {
        self.outer.table(name)
    }

    fn view(&self, name: &str) -> Option<ast::Query> {
        let key = name.to_ascii_lowercase();
        self.ctes
            .iter()
            .find(|(n, _)| *n == key)
            .map(|(_, q)| q.clone())
            .or_else(|| self.outer.view(name))
    }
}

/// The tables, without the view `hidden` (while its own query is planned).
struct Hiding<'a> {
    outer: &'a dyn Tables,
    hidden: String,
}

impl Tables for Hiding<'_> {
    fn table(&self, name: &str) -> Result<Arc<Table>, SqlError> {
        self.outer.table(name)
    }

    fn view(&self, name: &str) -> Option<ast::Query> {
        if name.eq_ignore_ascii_case(&self.hidden) {
            None
        } else {
            self.outer.view(name)
        }
    }
}

/// `UNION ALL`: both inputs' rows, as they come.
struct UnionAll;

impl Operator for UnionAll {
    fn describe(&self) -> String {
        "Union(all)".into()
    }

    fn process(&mut self, input: Vec<Change>, _ctx: &mut OpCtx) -> Result<Vec<Change>, SqlError> {
        Ok(input)
    }

    fn process_right(
        &mut self,
        input: Vec<Change>,
        _ctx: &mut OpCtx,
    ) -> Result<Vec<Change>, SqlError> {
        Ok(input)
    }
}

/// A dataflow: operators over sources.
pub enum Flow {
    /// The rows of source `index` (see [`Planned::sources`]).
    Source(usize),
    /// An operator over one input.
    Map(Box<Flow>, Box<dyn Operator>),
    /// A join: an operator over two inputs.
    Join(Box<Flow>, Box<Flow>, Box<dyn Operator>),
    /// Rows partitioned by the hash of these key expressions, for the keyed operator above:
    /// a job with parallelism runs each side of an exchange as its own tasks, with an
    /// exchange topic between them; otherwise rows pass straight through.
    Exchange(Box<Flow>, Vec<Expr>),
}

/// Puts an exchange keyed by `keys` below a keyed operator.
fn exchange(flow: Flow, keys: Vec<Expr>) -> Box<Flow> {
    Box::new(Flow::Exchange(Box::new(flow), keys))
}

impl Flow {
    /// The plan as EXPLAIN prints it, one operator per line, the root first.
    pub fn explain(&self, sources: &[Source], depth: usize, out: &mut String) {
        let pad = "  ".repeat(depth);
        match self {
            Flow::Source(i) => {
                let s = &sources[*i];
                out.push_str(&format!(
                    "{pad}Scan(table=[{}], topic=[{}], format=[{}]{})\n",
                    s.table.name,
                    s.table.topic,
                    s.table.value_format.name(),
                    if s.table.watermark.is_some() {
                        ", watermark"
                    } else {
                        ""
                    }
                ));
            }
            Flow::Map(input, op) => {
                out.push_str(&format!("{pad}{}\n", op.describe()));
                input.explain(sources, depth + 1, out);
            }
            Flow::Join(left, right, op) => {
                out.push_str(&format!("{pad}{}\n", op.describe()));
                left.explain(sources, depth + 1, out);
                right.explain(sources, depth + 1, out);
            }
            Flow::Exchange(input, keys) => {
                out.push_str(&format!(
                    "{pad}Exchange(hash=[{}])\n",
                    keys.iter()
                        .map(|k| match k {
                            Expr::Column(c) => format!("${c}"),
                            _ => "expr".to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                input.explain(sources, depth + 1, out);
            }
        }
    }

    fn contains(&self, source: usize) -> bool {
        match self {
            Flow::Source(i) => *i == source,
            Flow::Map(input, _) | Flow::Exchange(input, _) => input.contains(source),
            Flow::Join(left, right, _) => left.contains(source) || right.contains(source),
        }
    }
}

/// A source of a flow: a table, read from its topic.
#[derive(Debug, Clone)]
pub struct Source {
    /// The table.
    pub table: Arc<Table>,
}

/// A planned query.
pub struct Planned {
    /// The dataflow.
    pub flow: Flow,
    /// The sources it reads, by index.
    pub sources: Vec<Source>,
    /// The output columns.
    pub fields: Vec<Field>,
    /// Whether rows are updated and deleted (else only inserted).
    pub updating: bool,
    /// Positions of the output columns that are the GROUP BY keys (they key an updating
    /// result; a window aggregate's rows are unique by them).
    pub upsert_key: Vec<usize>,
    /// LIMIT, for queries whose results go to a caller.
    pub limit: Option<u64>,
}

impl Planned {
    /// EXPLAIN's text.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "== Physical plan ({}) ==\n",
            if self.updating {
                format!("updating, key {:?}", self.upsert_key_names())
            } else {
                "append-only".to_string()
            }
        ));
        self.flow.explain(&self.sources, 0, &mut out);
        out
    }

    fn upsert_key_names(&self) -> Vec<String> {
        self.upsert_key
            .iter()
            .map(|i| self.fields[*i].name.clone())
            .collect()
    }
}

/// What a FROM clause produced: a flow with its scope.
struct From {
    flow: Flow,
    scope: Scope,
    updating: bool,
    /// Positions of window_start and window_end when a window TVF was applied.
    window: Option<(usize, usize)>,
    /// The rowtime column, if the rows have one.
    rowtime: Option<usize>,
    /// Session windows are assigned in the aggregate, not per row.
    session: Option<SessionSpec>,
    /// The window columns come straight from a window table function (their rows must be
    /// grouped by both).
    tvf: bool,
    /// The columns that key an updating input (a primary key, a Top-N's partition and rank).
    key: Vec<usize>,
    /// The window function's time is processing time (`PROCTIME()`).
    proctime: bool,
}

struct SessionSpec {
    time: usize,
    gap_ms: i64,
    keys: Vec<usize>,
}

/// Plans `query` against `tables`.
pub fn plan_query(query: &ast::Query, tables: &dyn Tables) -> Result<Planned, SqlError> {
    // WITH: each common table expression is a view for this query (a later one may use an
    // earlier one).
    let with_ctes;
    let tables: &dyn Tables = match &query.with {
        Some(with) => {
            if with.recursive {
                return Err(SqlError::Unsupported("WITH RECURSIVE".into()));
            }
            with_ctes = Ctes {
                outer: tables,
                ctes: with
                    .cte_tables
                    .iter()
                    .map(|cte| {
                        (
                            cte.alias.name.value.to_ascii_lowercase(),
                            (*cte.query).clone(),
                        )
                    })
                    .collect(),
            };
            &with_ctes
        }
        None => tables,
    };
    let limit = match &query.limit_clause {
        None => None,
        Some(ast::LimitClause::LimitOffset { limit, offset, .. }) => {
            if offset.is_some() {
                return Err(SqlError::Unsupported("OFFSET in a streaming query".into()));
            }
            match limit {
                None => None,
                Some(e) => match expr::compile(e, &Scope::default())?.expr.constant() {
                    Some(Value::Int(n)) if n >= 0 => Some(n as u64),
                    _ => return Err(SqlError::Type("LIMIT takes a non-negative integer".into())),
                },
            }
        }
        Some(other) => return Err(SqlError::Unsupported(format!("{other}"))),
    };
    if query.order_by.is_some() {
        return Err(SqlError::Unsupported(
            "ORDER BY on a stream (use ROW_NUMBER() OVER (... ORDER BY ...) for top-N)".into(),
        ));
    }
    let mut sources = Vec::new();
    let (flow, scope, updating, upsert_key, _) = plan_set_expr(&query.body, tables, &mut sources)?;
    Ok(Planned {
        flow,
        sources,
        fields: scope.fields(),
        updating,
        upsert_key,
        limit,
    })
}

fn plan_set_expr(
    body: &SetExpr,
    tables: &dyn Tables,
    sources: &mut Vec<Source>,
) -> Result<SelectOut, SqlError> {
    match body {
        SetExpr::Select(select) => plan_select(select, tables, sources),
        SetExpr::Query(q) => {
            if q.limit_clause.is_some() || q.order_by.is_some() {
                return Err(SqlError::Unsupported(
                    "ORDER BY or LIMIT in a subquery".into(),
                ));
            }
            plan_set_expr(&q.body, tables, sources)
        }
        SetExpr::SetOperation {
            op: ast::SetOperator::Union,
            set_quantifier: ast::SetQuantifier::All,
            left,
            right,
        } => {
            let (left_flow, scope, left_updating, _, _) = plan_set_expr(left, tables, sources)?;
            let (right_flow, right_scope, right_updating, _, _) =
                plan_set_expr(right, tables, sources)?;
            if scope.columns.len() != right_scope.columns.len() {
                return Err(SqlError::Type(format!(
                    "UNION ALL of {} columns and {} columns",
                    scope.columns.len(),
                    right_scope.columns.len()
                )));
            }
            for (l, r) in scope.columns.iter().zip(&right_scope.columns) {
                if expr::common_type(&l.data_type, &r.data_type) != l.data_type
                    && !(l.data_type.is_numeric() && r.data_type.is_numeric())
                {
                    return Err(SqlError::Type(format!(
                        "UNION ALL: column {} is {} on the left and {} on the right",
                        l.name, l.data_type, r.data_type
                    )));
                }
            }
            Ok((
                Flow::Join(
                    Box::new(left_flow),
                    Box::new(right_flow),
                    Box::new(UnionAll),
                ),
                scope,
                left_updating || right_updating,
                Vec::new(),
                None,
            ))
        }
        other => Err(SqlError::Unsupported(match other {
            SetExpr::SetOperation { op, .. } => format!("{op} (UNION ALL runs)"),
            SetExpr::Values(_) => "VALUES".to_string(),
            _ => "this query form".to_string(),
        })),
    }
}

fn plan_from(
    factor: &TableFactor,
    tables: &dyn Tables,
    sources: &mut Vec<Source>,
) -> Result<From, SqlError> {
    match factor {
        TableFactor::Table {
            name,
            alias,
            args,
            version,
            ..
        } => {
            if version.is_some() {
                return Err(SqlError::Unsupported(
                    "FOR SYSTEM_TIME AS OF outside a temporal join".into(),
                ));
            }
            if args.is_some() {
                return Err(SqlError::Unsupported(format!("table function {name}")));
            }
            let name = object_name(name);
            if let Some(view) = tables.view(&name) {
                // A view is its query, planned here, under its name; inside it, its own name
                // is the table it may read (`WITH bids AS (SELECT ... FROM bids)`).
                let hiding = Hiding {
                    outer: tables,
                    hidden: name.to_ascii_lowercase(),
                };
                return plan_from(
                    &TableFactor::Derived {
                        lateral: false,
                        subquery: Box::new(view),
                        alias: Some(alias.clone().unwrap_or(ast::TableAlias {
                            name: ast::Ident::new(name.clone()),
                            columns: vec![],
                        })),
                    },
                    &hiding,
                    sources,
                );
            }
            let table = tables.table(&name)?;
            let qualifier = alias
                .as_ref()
                .map_or(name.clone(), |a| a.name.value.clone());
            let scope = Scope::of(Some(&qualifier), &table.fields());
            let rowtime = table.watermark.as_ref().map(|(i, _)| *i);
            let updating = table.upsert;
            let key = table.primary_key.clone();
            sources.push(Source { table });
            let mut flow = Flow::Source(sources.len() - 1);
            if updating {
                let keys = key.iter().map(|c| Expr::Column(*c)).collect();
                flow = Flow::Map(exchange(flow, keys), Box::new(Normalize::new(key.clone())));
            }
            Ok(From {
                flow,
                scope,
                updating,
                window: None,
                rowtime,
                session: None,
                tvf: false,
                key: if updating { key } else { Vec::new() },
                proctime: false,
            })
        }
        TableFactor::Derived {
            subquery, alias, ..
        } => {
            if subquery.limit_clause.is_some() || subquery.order_by.is_some() {
                return Err(SqlError::Unsupported(
                    "ORDER BY or LIMIT in a subquery".into(),
                ));
            }
            let (flow, mut scope, updating, key, window) =
                plan_set_expr(&subquery.body, tables, sources)?;
            if let Some(alias) = alias {
                for c in &mut scope.columns {
                    c.qualifier = Some(alias.name.value.clone());
                }
            }
            // A window aggregate's window_start, window_end and window_time stay what they are.
            let position = |name: &str| {
                scope
                    .columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(name))
            };
            let rowtime = position("window_time");
            let window = window.filter(|_| !updating);
            Ok(From {
                flow,
                scope,
                updating,
                window,
                rowtime,
                session: None,
                tvf: false,
                key,
                proctime: false,
            })
        }
        TableFactor::TableFunction { expr, alias } => {
            let ast::Expr::Function(f) = expr else {
                return Err(SqlError::Unsupported(format!("TABLE({expr})")));
            };
            window_tvf(f, alias.as_ref(), tables, sources)
        }
        TableFactor::NestedJoin { .. } => Err(SqlError::Unsupported("joins (coming next)".into())),
        other => Err(SqlError::Unsupported(format!("FROM {other}"))),
    }
}

fn object_name(name: &ast::ObjectName) -> String {
    name.0
        .iter()
        .map(|p| p.as_ident().map_or(p.to_string(), |i| i.value.clone()))
        .collect::<Vec<_>>()
        .join(".")
}

/// A constant interval argument, in milliseconds.
fn interval_ms(e: &ast::Expr, what: &str) -> Result<i64, SqlError> {
    match expr::compile(e, &Scope::default())?.expr.constant() {
        Some(Value::Interval(ms)) if ms > 0 => Ok(ms),
        _ => Err(SqlError::Type(format!(
            "{what} must be a positive INTERVAL constant, got {e}"
        ))),
    }
}

fn window_tvf(
    f: &ast::Function,
    alias: Option<&ast::TableAlias>,
    tables: &dyn Tables,
    sources: &mut Vec<Source>,
) -> Result<From, SqlError> {
    let name = function_name(f);
    let args = function_args(f)?;
    let expected = match name.as_str() {
        "TUMBLE" => 3,
        "HOP" | "CUMULATE" => 4,
        "SESSION" => 3,
        other => {
            return Err(SqlError::Unsupported(format!(
                "table function {other} (window functions are TUMBLE, HOP, CUMULATE, SESSION)"
            )));
        }
    };
    // An optional trailing offset is Flink's; Spate has none yet.
    if args.len() != expected {
        return Err(SqlError::Type(format!(
            "{name} takes {expected} arguments (TABLE t, DESCRIPTOR(time_col), {}), got {}",
            match name.as_str() {
                "TUMBLE" => "size",
                "HOP" => "slide, size",
                "CUMULATE" => "step, size",
                _ => "gap",
            },
            args.len()
        )));
    }
    let ast::Expr::Function(table_arg) = args[0] else {
        return Err(SqlError::Type(format!(
            "{name}'s first argument must be TABLE t"
        )));
    };
    if function_name(table_arg) != TABLE_ARG {
        return Err(SqlError::Type(format!(
            "{name}'s first argument must be TABLE t"
        )));
    }
    let table_args = function_args(table_arg)?;
    let table_name = table_args[0].to_string();
    let input = plan_from(
        &TableFactor::Table {
            name: ast::ObjectName(vec![ast::ObjectNamePart::Identifier(ast::Ident::new(
                table_name.trim_matches('`'),
            ))]),
            alias: None,
            args: None,
            with_hints: vec![],
            version: None,
            with_ordinality: false,
            partitions: vec![],
            json_path: None,
            sample: None,
            index_hints: vec![],
        },
        tables,
        sources,
    )?;
    let ast::Expr::Function(descriptor) = args[1] else {
        return Err(SqlError::Type(format!(
            "{name}'s second argument must be DESCRIPTOR(time_col)"
        )));
    };
    let descriptor_args = function_args(descriptor)?;
    if function_name(descriptor) != "DESCRIPTOR" || descriptor_args.len() != 1 {
        return Err(SqlError::Type(format!(
            "{name}'s second argument must be DESCRIPTOR(time_col)"
        )));
    }
    let time_name = descriptor_args[0].to_string();
    let time = input.scope.resolve(None, time_name.trim_matches('`'))?;
    let time_type = &input.scope.columns[time].data_type;
    if !time_type.is_timestamp() {
        return Err(SqlError::Type(format!(
            "the window's time column {time_name} is {time_type}, not a TIMESTAMP"
        )));
    }
    let proctime = input.rowtime != Some(time) && input.flow.is_proctime(time, sources);
    if input.rowtime != Some(time) && !proctime {
        return Err(SqlError::Type(format!(
            "the window's time column {time_name} is neither event time (declare WATERMARK FOR {time_name} AS ... on table {table_name}) nor processing time (PROCTIME())"
        )));
    }
    let kind = match name.as_str() {
        "TUMBLE" => WindowKind::Tumble {
            size: interval_ms(args[2], "TUMBLE's size")?,
        },
        "HOP" => {
            let slide = interval_ms(args[2], "HOP's slide")?;
            let size = interval_ms(args[3], "HOP's size")?;
            if size % slide != 0 {
                return Err(SqlError::Type(format!(
                    "HOP's size ({size} ms) must be a multiple of its slide ({slide} ms)"
                )));
            }
            WindowKind::Hop { slide, size }
        }
        "CUMULATE" => {
            let step = interval_ms(args[2], "CUMULATE's step")?;
            let size = interval_ms(args[3], "CUMULATE's size")?;
            if size % step != 0 {
                return Err(SqlError::Type(format!(
                    "CUMULATE's size ({size} ms) must be a multiple of its step ({step} ms)"
                )));
            }
            WindowKind::Cumulate { step, size }
        }
        _ => WindowKind::Session {
            gap: interval_ms(args[2], "SESSION's gap")?,
        },
    };
    let qualifier = alias.map(|a| a.name.value.clone());
    let mut scope = input.scope;
    if let Some(q) = &qualifier {
        for c in &mut scope.columns {
            c.qualifier = Some(q.clone());
        }
    }
    let base = scope.columns.len();
    for (column, data_type) in [
        ("window_start", DataType::Timestamp(3)),
        ("window_end", DataType::Timestamp(3)),
        ("window_time", scope.columns[time].data_type.clone()),
    ] {
        scope.columns.push(ScopeColumn {
            qualifier: qualifier.clone(),
            name: column.to_string(),
            data_type,
        });
    }
    if let WindowKind::Session { gap } = kind {
        if proctime {
            return Err(SqlError::Unsupported(
                "SESSION windows of processing time".into(),
            ));
        }
        let keys = table_args[1..]
            .iter()
            .map(|k| scope.resolve(None, k.to_string().trim_matches('`')))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(From {
            flow: Flow::Map(
                Box::new(input.flow),
                Box::new(WindowAssigner::placeholder(time)),
            ),
            scope,
            updating: input.updating,
            window: Some((base, base + 1)),
            rowtime: Some(base + 2),
            session: Some(SessionSpec {
                time,
                gap_ms: gap,
                keys,
            }),
            tvf: true,
            key: Vec::new(),
            proctime: false,
        });
    }
    if input.updating {
        return Err(SqlError::Unsupported(
            "window functions over an updating table".into(),
        ));
    }
    Ok(From {
        flow: Flow::Map(
            Box::new(input.flow),
            Box::new(WindowAssigner::new(kind, time)),
        ),
        scope,
        updating: false,
        window: Some((base, base + 1)),
        // A processing-time window's rows have no event time.
        rowtime: (!proctime).then_some(base + 2),
        session: None,
        tvf: true,
        key: Vec::new(),
        proctime,
    })
}

fn split_and(e: &ast::Expr, out: &mut Vec<ast::Expr>) {
    match e {
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        ast::Expr::Nested(inner)
            if matches!(
                **inner,
                ast::Expr::BinaryOp {
                    op: ast::BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_and(inner, out)
        }
        other => out.push(other.clone()),
    }
}

fn combined_scope(left: &Scope, right: &Scope) -> Scope {
    let mut columns = left.columns.clone();
    columns.extend(right.columns.iter().cloned());
    Scope {
        columns,
        substitutions: Vec::new(),
    }
}

/// A FROM item with its JOINs, left to right.
/// Filters the relation `from` by the WHERE conjuncts that read only its columns, taking them
/// out of `conjuncts` (predicate pushdown: a join then keeps only rows that can be output).
fn push_down(mut from: From, conjuncts: &mut Vec<ast::Expr>) -> Result<From, SqlError> {
    let mut kept = Vec::new();
    for c in std::mem::take(conjuncts) {
        match expr::compile(&c, &from.scope) {
            Ok(predicate) if matches!(predicate.data_type, DataType::Boolean) => {
                from.flow = Flow::Map(
                    Box::new(from.flow),
                    Box::new(Filter::new(predicate.expr, "WHERE")),
                );
            }
            _ => kept.push(c),
        }
    }
    *conjuncts = kept;
    Ok(from)
}

fn plan_joins(
    item: &ast::TableWithJoins,
    tables: &dyn Tables,
    sources: &mut Vec<Source>,
    conjuncts: &mut Vec<ast::Expr>,
) -> Result<From, SqlError> {
    // WHERE's conjuncts on one relation filter it before the joins when every join is inner
    // (an outer join's NULL-padded rows must meet WHERE after it).
    let inner_only = item.joins.iter().all(|j| {
        matches!(
            j.join_operator,
            ast::JoinOperator::Join(_) | ast::JoinOperator::Inner(_)
        )
    });
    let mut from = plan_from(&item.relation, tables, sources)?;
    if inner_only && !item.joins.is_empty() {
        from = push_down(from, conjuncts)?;
    }
    for join in &item.joins {
        let (kind, constraint) = match &join.join_operator {
            ast::JoinOperator::Join(c) | ast::JoinOperator::Inner(c) => (JoinType::Inner, c),
            ast::JoinOperator::Left(c) | ast::JoinOperator::LeftOuter(c) => (JoinType::Left, c),
            ast::JoinOperator::Right(c) | ast::JoinOperator::RightOuter(c) => (JoinType::Right, c),
            ast::JoinOperator::FullOuter(c) => (JoinType::Full, c),
            other => {
                return Err(SqlError::Unsupported(format!(
                    "{} joins (INNER, LEFT, RIGHT and FULL joins run)",
                    match other {
                        ast::JoinOperator::CrossJoin(_) => "CROSS",
                        ast::JoinOperator::Semi(_)
                        | ast::JoinOperator::LeftSemi(_)
                        | ast::JoinOperator::RightSemi(_) => "SEMI",
                        ast::JoinOperator::Anti(_)
                        | ast::JoinOperator::LeftAnti(_)
                        | ast::JoinOperator::RightAnti(_) => "ANTI",
                        _ => "these",
                    }
                )));
            }
        };
        // `FOR SYSTEM_TIME AS OF`: a temporal join against a versioned table.
        let (relation, as_of) = match &join.relation {
            TableFactor::Table {
                name,
                alias,
                version: Some(ast::TableVersion::ForSystemTimeAsOf(at)),
                ..
            } => (
                TableFactor::Table {
                    name: name.clone(),
                    alias: alias.clone(),
                    args: None,
                    with_hints: vec![],
                    version: None,
                    with_ordinality: false,
                    partitions: vec![],
                    json_path: None,
                    sample: None,
                    index_hints: vec![],
                },
                Some(at.clone()),
            ),
            other => (other.clone(), None),
        };
        let mut right = plan_from(&relation, tables, sources)?;
        if inner_only {
            right = push_down(right, conjuncts)?;
        }
        let mut condition = Vec::new();
        match constraint {
            ast::JoinConstraint::On(e) => split_and(e, &mut condition),
            ast::JoinConstraint::Using(columns) => {
                for c in columns {
                    let name = object_name(c);
                    let l = from.scope.resolve(None, &name)?;
                    let r = right.scope.resolve(None, &name)?;
                    let qualified = |scope: &Scope, i: usize| {
                        let c = &scope.columns[i];
                        ast::Expr::CompoundIdentifier(vec![
                            ast::Ident::new(c.qualifier.clone().unwrap_or_default()),
                            ast::Ident::new(c.name.clone()),
                        ])
                    };
                    condition.push(ast::Expr::BinaryOp {
                        left: Box::new(qualified(&from.scope, l)),
                        op: ast::BinaryOperator::Eq,
                        right: Box::new(qualified(&right.scope, r)),
                    });
                }
            }
            ast::JoinConstraint::Natural => {
                return Err(SqlError::Unsupported(
                    "NATURAL JOIN (name the columns with USING)".into(),
                ));
            }
            ast::JoinConstraint::None => {}
        }
        from = plan_join(from, right, kind, condition, as_of)?;
    }
    Ok(from)
}

/// Where a compiled expression reads a time: (column, offset ms) for `col`, `col + INTERVAL`,
/// `col - INTERVAL`.
fn time_term(e: &Expr) -> Option<(usize, i64)> {
    match e {
        Expr::Column(i) => Some((*i, 0)),
        Expr::Binary(op @ (expr::BinOp::Add | expr::BinOp::Sub), a, b) => {
            let (col, offset) = time_term(a)?;
            let Some(Value::Interval(ms)) = b.constant() else {
                return None;
            };
            Some((
                col,
                if *op == expr::BinOp::Add {
                    offset + ms
                } else {
                    offset - ms
                },
            ))
        }
        _ => None,
    }
}

/// Bounds on `left_time - right_time` a compiled condition sets: (lower, upper).
fn time_bounds(
    e: &Expr,
    left_time: usize,
    right_time: usize,
    bounds: &mut (Option<i64>, Option<i64>),
) {
    match e {
        Expr::And(a, b) => {
            time_bounds(a, left_time, right_time, bounds);
            time_bounds(b, left_time, right_time, bounds);
        }
        Expr::Binary(op, a, b) => {
            let (Some((ca, oa)), Some((cb, ob))) = (time_term(a), time_term(b)) else {
                return;
            };
            // a op b  with a = L + oa, b = R + ob  →  L - R op ob - oa (flipped when a is R).
            let (flip, diff) = if ca == left_time && cb == right_time {
                (false, ob - oa)
            } else if ca == right_time && cb == left_time {
                (true, oa - ob)
            } else {
                return;
            };
            use expr::BinOp::{Gt, GtEq, Lt, LtEq};
            let lower_bound = matches!((op, flip), (Gt | GtEq, false) | (Lt | LtEq, true));
            let upper_bound = matches!((op, flip), (Lt | LtEq, false) | (Gt | GtEq, true));
            if lower_bound {
                bounds.0 = Some(bounds.0.map_or(diff, |x: i64| x.max(diff)));
            } else if upper_bound {
                bounds.1 = Some(bounds.1.map_or(diff, |x: i64| x.min(diff)));
            }
        }
        _ => {}
    }
}

fn plan_join(
    left: From,
    right: From,
    kind: JoinType,
    condition: Vec<ast::Expr>,
    as_of: Option<ast::Expr>,
) -> Result<From, SqlError> {
    let width = left.scope.columns.len();
    let right_width = right.scope.columns.len();
    let scope = combined_scope(&left.scope, &right.scope);
    let mut left_keys = Vec::new();
    let mut right_keys = Vec::new();
    let mut key_columns: Vec<(usize, usize)> = Vec::new();
    let mut residual: Vec<ast::Expr> = Vec::new();
    for c in condition {
        if let ast::Expr::BinaryOp {
            left: a,
            op: ast::BinaryOperator::Eq,
            right: b,
        } = &c
        {
            let pair = match (
                expr::compile(a, &left.scope),
                expr::compile(b, &right.scope),
                expr::compile(b, &left.scope),
                expr::compile(a, &right.scope),
            ) {
                (Ok(l), Ok(r), _, _)
                    if expr::compile(a, &right.scope).is_err()
                        || expr::compile(b, &left.scope).is_err() =>
                {
                    Some((l, r))
                }
                (_, _, Ok(l), Ok(r)) => Some((l, r)),
                _ => None,
            };
            if let Some((l, r)) = pair {
                if let (Expr::Column(lc), Expr::Column(rc)) = (&l.expr, &r.expr) {
                    key_columns.push((*lc, *rc));
                }
                left_keys.push(l.expr);
                right_keys.push(r.expr);
                continue;
            }
        }
        residual.push(c);
    }
    let residual_ast = residual.into_iter().reduce(|a, b| ast::Expr::BinaryOp {
        left: Box::new(a),
        op: ast::BinaryOperator::And,
        right: Box::new(b),
    });
    let residual = residual_ast
        .as_ref()
        .map(|e| expr::compile(e, &scope))
        .transpose()?;
    if let Some(r) = &residual
        && !matches!(r.data_type, DataType::Boolean | DataType::Null)
    {
        return Err(SqlError::Type(format!(
            "a join condition must be BOOLEAN, got {}",
            r.data_type
        )));
    }
    if left_keys.is_empty() {
        return Err(SqlError::Unsupported(
            "a join without an equality between its two sides (a cross join)".into(),
        ));
    }
    let residual = residual.map(|r| r.expr);
    // What the join is: temporal, window, interval or regular; and what its rows are.
    type Kind = (
        Box<dyn Operator>,
        bool,
        Option<(usize, usize)>,
        Option<usize>,
    );
    if left.proctime || right.proctime {
        return Err(SqlError::Unsupported(
            "joins of processing-time windows (window joins are of event time)".into(),
        ));
    }
    let window_join = match (left.window, right.window) {
        (Some((lws, lwe)), Some((rws, rwe)))
            if key_columns.contains(&(lws, rws)) && key_columns.contains(&(lwe, rwe)) =>
        {
            Some((lws, lwe, rwe))
        }
        _ => None,
    };
    // An interval join: the condition bounds the left time against the right time both ways.
    let interval = match (left.rowtime, right.rowtime, &residual) {
        (Some(lt), Some(rt), Some(r)) if !left.updating && !right.updating => {
            let mut bounds = (None, None);
            time_bounds(r, lt, width + rt, &mut bounds);
            match bounds {
                (Some(lower), Some(upper)) => Some((lt, rt, lower, upper)),
                _ => None,
            }
        }
        _ => None,
    };
    let exchange_keys = (left_keys.clone(), right_keys.clone());
    let (op, updating, window, rowtime): Kind = if let Some(at) = as_of {
        if !matches!(kind, JoinType::Inner | JoinType::Left) {
            return Err(SqlError::Unsupported(
                "temporal joins other than INNER and LEFT".into(),
            ));
        }
        let at = expr::compile(&at, &left.scope)?;
        let Expr::Column(left_time) = at.expr else {
            return Err(SqlError::Type(
                "FOR SYSTEM_TIME AS OF takes a time column of the left table".into(),
            ));
        };
        let event_time = left.rowtime == Some(left_time) && right.rowtime.is_some();
        let join = TemporalJoin::new(
            kind == JoinType::Left,
            left_keys,
            right_keys,
            residual,
            left_time,
            if event_time { right.rowtime } else { None },
            width,
            right_width,
        );
        (Box::new(join), left.updating, left.window, left.rowtime)
    } else if let Some((lws, lwe, rwe)) = window_join {
        // A window join: both sides windowed, joined on window_start and window_end.
        let expiry = (
            Expiry {
                time: lwe,
                keep_ms: -1,
            },
            Expiry {
                time: rwe,
                keep_ms: -1,
            },
        );
        let join = Join::new(
            kind,
            left_keys,
            right_keys,
            residual,
            width,
            right_width,
            Some(expiry),
            "WindowJoin",
        );
        (Box::new(join), false, Some((lws, lwe)), left.rowtime)
    } else if let Some((lt, rt, lower, upper)) = interval {
        // A left row meets right rows up to `-lower` later; a right row left rows up to
        // `upper` later.
        let expiry = (
            Expiry {
                time: lt,
                keep_ms: (-lower).max(0) + 1,
            },
            Expiry {
                time: rt,
                keep_ms: upper.max(0) + 1,
            },
        );
        let join = Join::new(
            kind,
            left_keys,
            right_keys,
            residual,
            width,
            right_width,
            Some(expiry),
            "IntervalJoin",
        );
        (Box::new(join), false, None, left.rowtime)
    } else {
        let join = Join::new(
            kind,
            left_keys,
            right_keys,
            residual,
            width,
            right_width,
            None,
            "Join",
        );
        let updating = left.updating || right.updating || kind != JoinType::Inner;
        (Box::new(join), updating, None, None)
    };
    Ok(From {
        flow: Flow::Join(
            exchange(left.flow, exchange_keys.0),
            exchange(right.flow, exchange_keys.1),
            op,
        ),
        scope,
        updating,
        window,
        rowtime,
        session: None,
        tvf: false,
        key: Vec::new(),
        proctime: false,
    })
}

/// `SELECT ... FROM (SELECT ..., ROW_NUMBER() OVER (...) AS rn FROM ...) WHERE rn <= N`:
/// the inner select, its alias, the position of the ROW_NUMBER item, and N.
#[allow(clippy::type_complexity)]
fn top_n_pattern<'a>(
    select: &'a ast::Select,
    conjuncts: &[ast::Expr],
) -> Result<Option<(&'a ast::Select, Option<String>, usize, u64)>, SqlError> {
    let [only] = select.from.as_slice() else {
        return Ok(None);
    };
    let TableFactor::Derived {
        subquery, alias, ..
    } = &only.relation
    else {
        return Ok(None);
    };
    if !only.joins.is_empty() {
        return Ok(None);
    }
    let SetExpr::Select(inner) = &*subquery.body else {
        return Ok(None);
    };
    let Some((item, rn)) = inner
        .projection
        .iter()
        .enumerate()
        .find_map(|(i, item)| match item {
            SelectItem::ExprWithAlias {
                expr: ast::Expr::Function(f),
                alias,
            } if f.over.is_some() => Some((i, (function_name(f), alias.value.clone()))),
            _ => None,
        })
    else {
        return Ok(None);
    };
    let (function, rn) = rn;
    if function != "ROW_NUMBER" {
        return Err(SqlError::Unsupported(format!(
            "{function}() OVER: Top-N and deduplication take ROW_NUMBER()"
        )));
    }
    let is_rn = |e: &ast::Expr| match e {
        ast::Expr::Identifier(i) => i.value.eq_ignore_ascii_case(&rn),
        ast::Expr::CompoundIdentifier(parts) => parts
            .last()
            .is_some_and(|p| p.value.eq_ignore_ascii_case(&rn)),
        _ => false,
    };
    let number = |e: &ast::Expr| match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse::<u64>().ok(),
            _ => None,
        },
        _ => None,
    };
    let mut limit = None;
    for c in conjuncts {
        if let ast::Expr::BinaryOp { left, op, right } = c {
            let bound = match (is_rn(left), is_rn(right), op) {
                (true, _, ast::BinaryOperator::LtEq | ast::BinaryOperator::Eq) => number(right),
                (true, _, ast::BinaryOperator::Lt) => number(right).map(|n| n.saturating_sub(1)),
                (_, true, ast::BinaryOperator::GtEq | ast::BinaryOperator::Eq) => number(left),
                (_, true, ast::BinaryOperator::Gt) => number(left).map(|n| n.saturating_sub(1)),
                _ => None,
            };
            if let Some(n) = bound {
                limit = Some(limit.map_or(n, |l: u64| l.min(n)));
            }
        }
    }
    let Some(n) = limit.filter(|n| *n > 0) else {
        return Err(SqlError::Unsupported(format!(
            "ROW_NUMBER() OVER without a bound on {rn} in the outer WHERE ({rn} <= N): an unbounded rank"
        )));
    };
    Ok(Some((
        inner,
        alias.as_ref().map(|a| a.name.value.clone()),
        item,
        n,
    )))
}

fn plan_top_n(
    inner: &ast::Select,
    alias: Option<String>,
    item: usize,
    n: u64,
    tables: &dyn Tables,
    sources: &mut Vec<Source>,
) -> Result<From, SqlError> {
    let SelectItem::ExprWithAlias {
        expr: ast::Expr::Function(f),
        alias: rn,
    } = &inner.projection[item]
    else {
        return Err(SqlError::Type("not a ROW_NUMBER() item".into()));
    };
    let Some(ast::WindowType::WindowSpec(spec)) = &f.over else {
        return Err(SqlError::Unsupported("a named window in OVER".into()));
    };
    if spec.order_by.is_empty() {
        return Err(SqlError::Type("ROW_NUMBER() OVER needs an ORDER BY".into()));
    }
    // How many columns the items before ROW_NUMBER() give: the row number goes there.
    let mut prefix = inner.clone();
    prefix.projection.truncate(item);
    let before = if item == 0 {
        0
    } else {
        plan_select(&prefix, tables, &mut Vec::new())?
            .1
            .columns
            .len()
    };
    // OVER's expressions read the FROM rows: computed as hidden columns, dropped after.
    let mut stripped = inner.clone();
    stripped.projection.remove(item);
    let hidden: Vec<&ast::Expr> = spec
        .partition_by
        .iter()
        .chain(spec.order_by.iter().map(|o| &o.expr))
        .collect();
    for (i, e) in hidden.iter().enumerate() {
        stripped.projection.push(SelectItem::ExprWithAlias {
            expr: (*e).clone(),
            alias: ast::Ident::new(format!("$over{i}")),
        });
    }
    let (flow, scope, updating, _, window) = plan_select(&stripped, tables, sources)?;
    let visible = scope.columns.len() - hidden.len();
    let partitions = spec.partition_by.len();
    // A hidden column that is a visible one (the same input column) stands for it.
    let visible_twin = |hidden_index: usize| -> Option<usize> {
        let e = hidden[hidden_index];
        let compiled = expr::compile(
            e,
            &Scope {
                columns: scope.columns[..visible].to_vec(),
                substitutions: Vec::new(),
            },
        );
        match compiled {
            Ok(Typed {
                expr: Expr::Column(c),
                ..
            }) => Some(c),
            _ => None,
        }
    };
    let expire = if updating {
        None
    } else {
        (0..partitions).find(|i| {
            window.is_some_and(|(_, we)| visible_twin(*i) == Some(we) || scope.columns[visible + i].name == "window_end")
                || matches!(hidden[*i], ast::Expr::Identifier(id) if id.value.eq_ignore_ascii_case("window_end"))
        })
    };
    let order: Vec<(Expr, bool)> = spec
        .order_by
        .iter()
        .enumerate()
        .map(|(j, o)| {
            (
                Expr::Column(visible + partitions + j),
                o.options.asc == Some(false),
            )
        })
        .collect();
    // Deduplication keeping the last row (ORDER BY time DESC, first row): a later row with
    // the same time wins, as Flink's keep-last; otherwise ties keep their arrival order.
    let last_wins = n == 1
        && order.len() == 1
        && order[0].1
        && scope.columns[visible + partitions].data_type.is_timestamp();
    let partition_keys: Vec<Expr> = (0..partitions).map(|i| Expr::Column(visible + i)).collect();
    let flow = Flow::Exchange(Box::new(flow), partition_keys.clone());
    let top = TopN::new(
        partition_keys,
        order,
        n as usize,
        updating,
        expire,
        last_wins,
    );
    let mut flow = Flow::Map(Box::new(flow), Box::new(top));
    // The row number goes where ROW_NUMBER() was written; the hidden columns go.
    let rank = scope.columns.len();
    let mut positions: Vec<usize> = (0..visible).collect();
    positions.insert(before.min(visible), rank);
    flow = Flow::Map(
        Box::new(flow),
        Box::new(Project::new(
            positions.iter().map(|i| Expr::Column(*i)).collect(),
        )),
    );
    let mut columns = scope.columns[..visible].to_vec();
    columns.insert(
        before.min(visible),
        ScopeColumn {
            qualifier: None,
            name: rn.value.clone(),
            data_type: DataType::BigInt,
        },
    );
    if let Some(a) = &alias {
        for c in &mut columns {
            c.qualifier = Some(a.clone());
        }
    }
    // Its key: the partition columns (when selected) and the row number.
    let shift = |c: usize| if c >= before.min(visible) { c + 1 } else { c };
    let key: Vec<usize> = match (0..partitions)
        .map(visible_twin)
        .collect::<Option<Vec<_>>>()
    {
        Some(cols) => cols
            .into_iter()
            .map(shift)
            .chain(std::iter::once(before.min(visible)))
            .collect(),
        None => Vec::new(),
    };
    let rowtime = columns
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case("window_time"));
    Ok(From {
        flow,
        scope: Scope {
            columns,
            substitutions: Vec::new(),
        },
        updating: expire.is_none(),
        window: None,
        rowtime,
        session: None,
        tvf: false,
        key,
        proctime: false,
    })
}

/// Aggregate calls found in SELECT and HAVING, each once.
fn collect_aggregates(e: &ast::Expr, out: &mut Vec<ast::Function>) {
    use std::ops::ControlFlow;
    let _ = ast::visit_expressions(e, |e: &ast::Expr| {
        if let ast::Expr::Function(f) = e
            && expr::is_aggregate(&function_name(f))
            && f.over.is_none()
            && !out.iter().any(|g| g.to_string() == f.to_string())
        {
            out.push(f.clone());
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Flink's deprecated group window functions — `GROUP BY TUMBLE(t, size)`, `HOP(t, slide,
/// size)` or `SESSION(t, gap)`, with `TUMBLE_START`, `..._END` and `..._ROWTIME` in the select
/// list — are the window table functions written another way: the query is rewritten into
/// them (the other GROUP BY keys partition a SESSION), as Flink plans both alike.
fn legacy_group_window(select: &ast::Select) -> Result<Option<ast::Select>, SqlError> {
    let GroupByExpr::Expressions(exprs, _) = &select.group_by else {
        return Ok(None);
    };
    let mut window = None;
    let mut keys = Vec::new();
    for e in exprs {
        match e {
            ast::Expr::Function(f)
                if matches!(function_name(f).as_str(), "TUMBLE" | "HOP" | "SESSION") =>
            {
                if window.replace(f).is_some() {
                    return Err(SqlError::Unsupported(
                        "two group window functions in one GROUP BY".into(),
                    ));
                }
            }
            other => keys.push(other.clone()),
        }
    }
    let Some(f) = window else {
        return Ok(None);
    };
    let name = function_name(f);
    let args = function_args(f)?;
    let expected = if name == "HOP" { 3 } else { 2 };
    if args.len() != expected {
        return Err(SqlError::Type(format!(
            "the group window {name} takes {expected} arguments (the time column, {}), got {}",
            match name.as_str() {
                "TUMBLE" => "size",
                "HOP" => "slide, size",
                _ => "gap",
            },
            args.len()
        )));
    }
    let (table, alias) = match (&select.from[..], &select.from.first().map(|f| &f.relation)) {
        ([one], Some(TableFactor::Table { name, alias, .. })) if one.joins.is_empty() => (
            object_name(name),
            alias.as_ref().map(|a| a.name.value.clone()),
        ),
        _ => {
            return Err(SqlError::Unsupported(format!(
                "GROUP BY {name}(...) over a join or a subquery: use the window table function, FROM TABLE({name}(TABLE t, DESCRIPTOR(time_col), ...))"
            )));
        }
    };
    let column = |e: &ast::Expr| match e {
        ast::Expr::Identifier(i) => Ok(i.value.clone()),
        ast::Expr::CompoundIdentifier(parts) => {
            Ok(parts.last().map(|i| i.value.clone()).unwrap_or_default())
        }
        other => Err(SqlError::Unsupported(format!(
            "{other} in a GROUP BY with {name}(...): group by columns"
        ))),
    };
    let time = column(args[0])?;
    let partition = if name == "SESSION" && !keys.is_empty() {
        let keys = keys
            .iter()
            .map(|k| column(k).map(|c| format!("`{c}`")))
            .collect::<Result<Vec<_>, _>>()?;
        format!(" PARTITION BY {}", keys.join(", "))
    } else {
        String::new()
    };
    let rest: Vec<String> = args[1..].iter().map(|a| a.to_string()).collect();
    let qualifier = alias.unwrap_or_else(|| table.clone());
    let text = format!(
        "SELECT * FROM TABLE({name}(TABLE `{table}`{partition}, DESCRIPTOR(`{time}`), {})) AS `{qualifier}`",
        rest.join(", ")
    );
    let relation = match crate::parse::parse(&text)?.pop().map(|p| p.statement) {
        Some(crate::parse::Statement::Query(q)) => match *q.body {
            SetExpr::Select(s) => s.from.into_iter().next().map(|f| f.relation),
            _ => None,
        },
        _ => None,
    }
    .ok_or_else(|| SqlError::Runtime(format!("rewriting GROUP BY {name}(...)")))?;
    let mut out = select.clone();
    out.from[0].relation = relation;
    keys.push(ast::Expr::Identifier(ast::Ident::new("window_start")));
    keys.push(ast::Expr::Identifier(ast::Ident::new("window_end")));
    out.group_by = GroupByExpr::Expressions(keys, vec![]);
    // TUMBLE_START(...) is window_start, ..._END window_end, ..._ROWTIME window_time.
    let auxiliary = |e: &mut ast::Expr| {
        if let ast::Expr::Function(f) = e {
            let called = function_name(f);
            let column =
                ["TUMBLE", "HOP", "SESSION"]
                    .iter()
                    .find_map(|w| match called.strip_prefix(w)? {
                        "_START" => Some("window_start"),
                        "_END" => Some("window_end"),
                        "_ROWTIME" => Some("window_time"),
                        _ => None,
                    });
            if let Some(column) = column {
                *e = ast::Expr::Identifier(ast::Ident::new(column));
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    };
    let _ = ast::visit_expressions_mut(&mut out.projection, auxiliary);
    let _ = ast::visit_expressions_mut(&mut out.having, auxiliary);
    Ok(Some(out))
}

fn plan_select(
    select: &ast::Select,
    tables: &dyn Tables,
    sources: &mut Vec<Source>,
) -> Result<SelectOut, SqlError> {
    if select.from.is_empty() {
        return Err(SqlError::Unsupported("a query without FROM".into()));
    }
    if let Some(rewritten) = legacy_group_window(select)? {
        return plan_select(&rewritten, tables, sources);
    }
    if select.distinct.is_some() {
        return Err(SqlError::Unsupported(
            "SELECT DISTINCT (use GROUP BY)".into(),
        ));
    }
    // WHERE's conjuncts: those relating two tables of a comma join become its condition.
    let mut conjuncts = Vec::new();
    if let Some(selection) = &select.selection {
        split_and(selection, &mut conjuncts);
    }
    let mut from = match top_n_pattern(select, &conjuncts)? {
        Some((inner, alias, item, n)) => plan_top_n(inner, alias, item, n, tables, sources)?,
        None => {
            let mut from = plan_joins(&select.from[0], tables, sources, &mut conjuncts)?;
            if select.from.len() > 1 {
                from = push_down(from, &mut conjuncts)?;
            }
            from
        }
    };
    for next in &select.from[1..] {
        let mut right = plan_joins(next, tables, sources, &mut conjuncts)?;
        right = push_down(right, &mut conjuncts)?;
        let mut condition = Vec::new();
        let mut rest = Vec::new();
        for c in conjuncts {
            let left_only = expr::compile(&c, &from.scope).is_ok();
            let right_only = expr::compile(&c, &right.scope).is_ok();
            let combined = expr::compile(&c, &combined_scope(&from.scope, &right.scope)).is_ok();
            if combined && !left_only && !right_only {
                condition.push(c);
            } else {
                rest.push(c);
            }
        }
        conjuncts = rest;
        from = plan_join(from, right, JoinType::Inner, condition, None)?;
    }
    let mut flow = from.flow;
    let mut scope = from.scope;
    let mut updating = from.updating;
    if !conjuncts.is_empty() {
        let selection = conjuncts
            .into_iter()
            .reduce(|a, b| ast::Expr::BinaryOp {
                left: Box::new(a),
                op: ast::BinaryOperator::And,
                right: Box::new(b),
            })
            .ok_or_else(|| SqlError::Type("an empty WHERE".into()))?;
        let predicate = expr::compile(&selection, &scope)?;
        if !matches!(predicate.data_type, DataType::Boolean | DataType::Null) {
            return Err(SqlError::Type(format!(
                "WHERE needs a BOOLEAN condition, got {}",
                predicate.data_type
            )));
        }
        flow = Flow::Map(
            Box::new(flow),
            Box::new(Filter::new(predicate.expr, "WHERE")),
        );
    }

    let group_exprs: Vec<ast::Expr> = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return Err(SqlError::Unsupported(
                    "GROUP BY ROLLUP/CUBE/GROUPING SETS".into(),
                ));
            }
            exprs.clone()
        }
        GroupByExpr::All(_) => return Err(SqlError::Unsupported("GROUP BY ALL".into())),
    };
    let mut aggregates = Vec::new();
    for item in &select.projection {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            collect_aggregates(e, &mut aggregates);
        }
    }
    if let Some(having) = &select.having {
        collect_aggregates(having, &mut aggregates);
    }
    let mut upsert_key_inner: Vec<usize> = if updating {
        from.key.clone()
    } else {
        Vec::new()
    };
    // Where window_start and window_end are in the current rows.
    let mut window_now = from.window;
    if !group_exprs.is_empty() || !aggregates.is_empty() {
        // The aggregate's output row: the keys, then the aggregates.
        let mut keys = Vec::new();
        let mut out = Scope::default();
        for g in &group_exprs {
            let typed = expr::compile(g, &scope)?;
            let (qualifier, name) = match g {
                ast::Expr::Identifier(i) => (None, i.value.clone()),
                ast::Expr::CompoundIdentifier(parts) => (
                    parts.first().map(|p| p.value.clone()),
                    parts.last().map_or(String::new(), |p| p.value.clone()),
                ),
                other => (None, other.to_string()),
            };
            // A key that is a plain column keeps that column's qualifier.
            let qualifier = match &typed.expr {
                Expr::Column(i) => scope.columns[*i].qualifier.clone(),
                _ => qualifier,
            };
            out.substitutions.push((g.to_string(), keys.len()));
            out.columns.push(ScopeColumn {
                qualifier,
                name,
                data_type: typed.data_type.clone(),
            });
            keys.push(typed);
        }
        let mut calls = Vec::new();
        for f in &aggregates {
            let call = aggregate_call(f, &scope)?;
            out.substitutions
                .push((f.to_string(), keys.len() + calls.len()));
            out.columns.push(ScopeColumn {
                qualifier: None,
                name: f.to_string(),
                data_type: call.data_type.clone(),
            });
            calls.push(call);
        }
        let window_keys = from.window.and_then(|(start, end)| {
            let position = |col: usize| {
                keys.iter()
                    .position(|k| matches!(k.expr, Expr::Column(c) if c == col))
            };
            Some((position(start)?, position(end)?))
        });
        if from.tvf && window_keys.is_none() {
            return Err(SqlError::Unsupported(
                "grouping a window function's rows without both window_start and window_end".into(),
            ));
        }
        if from.session.is_some() && window_keys.is_none() {
            return Err(SqlError::Unsupported(
                "SESSION windows outside a GROUP BY window_start, window_end".into(),
            ));
        }
        let session = from.session.map(|s| crate::exec::Session {
            time: s.time,
            gap_ms: s.gap_ms,
            keys: s.keys,
        });
        let windowed = window_keys.is_some();
        if windowed && updating {
            return Err(SqlError::Unsupported(
                "window aggregates of an updating table".into(),
            ));
        }
        // Rows of a group meet in one task: hashed by the group keys, the window's bounds
        // aside (a session's are only known in the aggregate).
        let hashed: Vec<Expr> = keys
            .iter()
            .enumerate()
            .filter(|(i, _)| window_keys.is_none_or(|(s, e)| *i != s && *i != e))
            .map(|(_, k)| k.expr.clone())
            .collect();
        // Below a window assigner when the keys are its input's columns: a HOP window copies
        // each row per window, and the copies need not cross the exchange (as Flink assigns
        // windows after its exchange).
        flow = match (flow, from.window) {
            (Flow::Map(input, assigner), Some((window_start, _)))
                if assigner.appends()
                    && hashed
                        .iter()
                        .all(|k| matches!(k, Expr::Column(c) if *c < window_start)) =>
            {
                Flow::Map(Box::new(Flow::Exchange(input, hashed)), assigner)
            }
            (flow, _) => Flow::Exchange(Box::new(flow), hashed),
        };
        let mut aggregate = Aggregate::new(
            keys.into_iter().map(|k| k.expr).collect(),
            calls,
            window_keys,
            session,
            updating,
        );
        if from.proctime {
            aggregate = aggregate.processing_time();
        }
        upsert_key_inner = (0..group_exprs.len()).collect();
        if !windowed {
            updating = true;
        }
        flow = Flow::Map(Box::new(flow), Box::new(aggregate));
        scope = out;
        window_now = window_keys;
        if let Some(having) = &select.having {
            let predicate = expr::compile(having, &scope)?;
            flow = Flow::Map(
                Box::new(flow),
                Box::new(Filter::new(predicate.expr, "HAVING")),
            );
        }
    } else if select.having.is_some() {
        return Err(SqlError::Type(
            "HAVING without GROUP BY or aggregates".into(),
        ));
    }

    // The projection.
    let mut exprs: Vec<Typed> = Vec::new();
    let mut columns = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::Wildcard(_) => {
                for (i, c) in scope.columns.iter().enumerate() {
                    if c.name.starts_with('$') {
                        continue; // system columns show only when named
                    }
                    exprs.push(Typed {
                        expr: Expr::Column(i),
                        data_type: c.data_type.clone(),
                    });
                    columns.push(c.clone());
                }
            }
            SelectItem::QualifiedWildcard(kind, _) => {
                let q = match kind {
                    ast::SelectItemQualifiedWildcardKind::ObjectName(name) => object_name(name),
                    ast::SelectItemQualifiedWildcardKind::Expr(e) => e.to_string(),
                };
                if !scope.columns.iter().any(|c| {
                    c.qualifier
                        .as_deref()
                        .is_some_and(|cq| cq.eq_ignore_ascii_case(&q))
                }) {
                    return Err(SqlError::UnknownColumn {
                        name: format!("{q}.*"),
                        candidates: scope.candidates_public(),
                    });
                }
                for (i, c) in scope.columns.iter().enumerate() {
                    if c.qualifier
                        .as_deref()
                        .is_some_and(|cq| cq.eq_ignore_ascii_case(&q))
                    {
                        exprs.push(Typed {
                            expr: Expr::Column(i),
                            data_type: c.data_type.clone(),
                        });
                        columns.push(c.clone());
                    }
                }
            }
            SelectItem::UnnamedExpr(e) => {
                let typed = expr::compile(e, &scope)?;
                let name = match e {
                    ast::Expr::Identifier(i) => i.value.clone(),
                    ast::Expr::CompoundIdentifier(parts) => {
                        parts.last().map_or(String::new(), |p| p.value.clone())
                    }
                    _ => match &typed.expr {
                        Expr::Column(i) if !scope.columns[*i].name.contains('(') => {
                            scope.columns[*i].name.clone()
                        }
                        _ => format!("EXPR${}", exprs.len()),
                    },
                };
                columns.push(ScopeColumn {
                    qualifier: None,
                    name,
                    data_type: typed.data_type.clone(),
                });
                exprs.push(typed);
            }
            SelectItem::ExprWithAlias { expr: e, alias } => {
                let typed = expr::compile(e, &scope)?;
                columns.push(ScopeColumn {
                    qualifier: None,
                    name: alias.value.clone(),
                    data_type: typed.data_type.clone(),
                });
                exprs.push(typed);
            }
        }
    }
    // Two columns of one name: the later ones are renamed as Flink does (`id`, `id0`, `id1`).
    let mut seen = std::collections::HashSet::new();
    for c in &mut columns {
        if !seen.insert(c.name.to_ascii_lowercase()) {
            let base = c.name.clone();
            let mut n = 0;
            while !seen.insert(format!("{base}{n}").to_ascii_lowercase()) {
                n += 1;
            }
            c.name = format!("{base}{n}");
        }
    }
    let upsert_key = if !upsert_key_inner.is_empty() {
        let mut key = Vec::new();
        for k in &upsert_key_inner {
            if let Some(p) = exprs
                .iter()
                .position(|e| matches!(e.expr, Expr::Column(c) if c == *k))
            {
                key.push(p);
            }
        }
        key
    } else {
        Vec::new()
    };
    let window_out = window_now.and_then(|(ws, we)| {
        let at = |col: usize| {
            exprs
                .iter()
                .position(|e| matches!(e.expr, Expr::Column(c) if c == col))
        };
        Some((at(ws)?, at(we)?))
    });
    let identity = exprs.len() == scope.columns.len()
        && exprs
            .iter()
            .enumerate()
            .all(|(i, e)| matches!(e.expr, Expr::Column(c) if c == i));
    if !identity {
        flow = Flow::Map(
            Box::new(flow),
            Box::new(Project::new(exprs.into_iter().map(|e| e.expr).collect())),
        );
    }
    Ok((
        flow,
        Scope {
            columns,
            substitutions: Vec::new(),
        },
        updating,
        upsert_key,
        window_out,
    ))
}

fn aggregate_call(f: &ast::Function, scope: &Scope) -> Result<AggCall, SqlError> {
    let name = function_name(f);
    let distinct = matches!(
        &f.args,
        ast::FunctionArguments::List(l) if l.duplicate_treatment == Some(ast::DuplicateTreatment::Distinct)
    );
    let star = matches!(
        &f.args,
        ast::FunctionArguments::List(l) if matches!(l.args.as_slice(), [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard)])
    );
    let filter = f
        .filter
        .as_ref()
        .map(|e| expr::compile(e, scope).map(|t| t.expr))
        .transpose()?;
    if star {
        if name != "COUNT" {
            return Err(SqlError::Type(format!(
                "{name}(*) is not an aggregate; use COUNT(*)"
            )));
        }
        return Ok(AggCall {
            kind: AggKind::Count,
            arg: None,
            filter,
            data_type: DataType::BigInt,
        });
    }
    let args = function_args(f)?;
    if args.len() != 1 {
        return Err(SqlError::Type(format!(
            "{name} takes one argument, got {}",
            args.len()
        )));
    }
    let arg = expr::compile(args[0], scope)?;
    let numeric = |t: &DataType| {
        if t.is_numeric() || *t == DataType::Null {
            Ok(())
        } else {
            Err(SqlError::Type(format!("{name} needs a number, got {t}")))
        }
    };
    let (kind, data_type) = match name.as_str() {
        "COUNT" if distinct => (AggKind::CountDistinct, DataType::BigInt),
        "COUNT" => (AggKind::Count, DataType::BigInt),
        _ if distinct => {
            return Err(SqlError::Unsupported(format!("{name}(DISTINCT ...)")));
        }
        "SUM" => {
            numeric(&arg.data_type)?;
            let t = if arg.data_type.is_integer() {
                DataType::BigInt
            } else {
                DataType::Double
            };
            (AggKind::Sum, t)
        }
        "AVG" => {
            numeric(&arg.data_type)?;
            let t = if arg.data_type.is_integer() {
                DataType::BigInt
            } else {
                DataType::Double
            };
            (AggKind::Avg, t)
        }
        "MIN" => (AggKind::Min, arg.data_type.clone()),
        "MAX" => (AggKind::Max, arg.data_type.clone()),
        "FIRST_VALUE" => (AggKind::First, arg.data_type.clone()),
        "LAST_VALUE" => (AggKind::Last, arg.data_type.clone()),
        other => return Err(SqlError::Unsupported(format!("the aggregate {other}"))),
    };
    Ok(AggCall {
        kind,
        arg: Some(arg.expr),
        filter,
        data_type,
    })
}

/// What moves a flow's time forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Time {
    /// The event-time watermark (ms).
    Watermark(i64),
    /// The wall clock (ms), for processing-time operators.
    Clock(i64),
}

/// Runs `f` under the watermark that rows fired by `time` are judged by downstream: the one
/// before a watermark advance (a fired window is not late by the advance that fired it), the
/// current one when the clock fired them.
fn judged<T>(ctx: &mut OpCtx, time: Time, f: impl FnOnce(&mut OpCtx) -> T) -> T {
    let judge = match time {
        Time::Watermark(_) => ctx.prior_watermark,
        Time::Clock(_) => ctx.watermark,
    };
    let current = std::mem::replace(&mut ctx.watermark, judge);
    let out = f(ctx);
    ctx.watermark = current;
    out
}

/// What `op` emits because `time` moved.
fn fire(op: &mut Box<dyn Operator>, time: Time, ctx: &mut OpCtx) -> Result<Vec<Change>, SqlError> {
    match time {
        Time::Watermark(watermark) => op.on_watermark(watermark, ctx),
        Time::Clock(now_ms) => op.on_processing_time(now_ms, ctx),
    }
}

impl Flow {
    /// Pushes changes of source `source` through the flow: what comes out at the root.
    pub fn push(
        &mut self,
        source: usize,
        changes: Vec<Change>,
        ctx: &mut OpCtx,
    ) -> Result<Vec<Change>, SqlError> {
        match self {
            Flow::Source(i) => Ok(if *i == source { changes } else { Vec::new() }),
            Flow::Exchange(input, _) => input.push(source, changes, ctx),
            Flow::Map(input, op) => {
                let below = input.push(source, changes, ctx)?;
                if below.is_empty() {
                    return Ok(below);
                }
                op.process(below, ctx)
            }
            Flow::Join(left, right, op) => {
                if left.contains(source) {
                    let below = left.push(source, changes, ctx)?;
                    if below.is_empty() {
                        return Ok(below);
                    }
                    op.process(below, ctx)
                } else {
                    let below = right.push(source, changes, ctx)?;
                    if below.is_empty() {
                        return Ok(below);
                    }
                    op.process_right(below, ctx)
                }
            }
        }
    }

    /// Time moved: the watermark advanced (already in `ctx`), or the wall clock. What the
    /// operators emit, through the operators above them.
    pub fn advance(&mut self, time: Time, ctx: &mut OpCtx) -> Result<Vec<Change>, SqlError> {
        match self {
            Flow::Source(_) => Ok(Vec::new()),
            Flow::Exchange(input, _) => input.advance(time, ctx),
            Flow::Map(input, op) => {
                let below = input.advance(time, ctx)?;
                let mut out = if below.is_empty() {
                    below
                } else {
                    judged(ctx, time, |ctx| op.process(below, ctx))?
                };
                out.extend(fire(op, time, ctx)?);
                Ok(out)
            }
            Flow::Join(left, right, op) => {
                let from_left = left.advance(time, ctx)?;
                let from_right = right.advance(time, ctx)?;
                let mut out = judged(ctx, time, |ctx| {
                    let mut out = Vec::new();
                    if !from_left.is_empty() {
                        out.extend(op.process(from_left, ctx)?);
                    }
                    if !from_right.is_empty() {
                        out.extend(op.process_right(from_right, ctx)?);
                    }
                    Ok::<_, SqlError>(out)
                })?;
                out.extend(fire(op, time, ctx)?);
                Ok(out)
            }
        }
    }

    /// Whether column `column` of the flow's rows is a processing-time attribute: `PROCTIME()`,
    /// as a table's computed column or selected, passed through filters and projections.
    fn is_proctime(&self, column: usize, sources: &[Source]) -> bool {
        match self {
            Flow::Source(i) => sources.get(*i).is_some_and(|s| {
                matches!(
                    s.table.columns.get(column).map(|c| &c.kind),
                    Some(crate::parse::ColumnKind::Computed(e))
                        if matches!(&**e, ast::Expr::Function(f) if function_name(f) == "PROCTIME")
                )
            }),
            Flow::Exchange(input, _) => input.is_proctime(column, sources),
            Flow::Map(input, op) => match op.origin(column) {
                Origin::Input(c) => input.is_proctime(c, sources),
                Origin::Proctime => true,
                Origin::Other => false,
            },
            Flow::Join(..) => false,
        }
    }

    /// The operators, root first, depth first, left before right (their positions name their
    /// state in the changelog).
    pub fn operators(&mut self) -> Vec<&mut Box<dyn Operator>> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a mut self, out: &mut Vec<&'a mut Box<dyn Operator>>) {
        match self {
            Flow::Source(_) => {}
            Flow::Exchange(input, _) => input.collect(out),
            Flow::Map(input, op) => {
                out.push(op);
                input.collect(out);
            }
            Flow::Join(left, right, op) => {
                out.push(op);
                left.collect(out);
                right.collect(out);
            }
        }
    }
}
