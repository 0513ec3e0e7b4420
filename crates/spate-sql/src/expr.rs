//! Scalar expressions: `sqlparser`'s AST compiled against a [`Scope`] (the columns a clause
//! sees) into an [`Expr`] tree with its type checked and columns resolved to positions, then
//! evaluated per row. Names are matched case-insensitively; an unknown column is named with
//! the columns in scope. Function calls go to [`crate::functions`]; aggregates are not
//! expressions here (the planner replaces them by columns through [`Scope::substitutions`]).

use std::sync::Arc;

use regex::Regex;
use sqlparser::ast::{self, BinaryOperator, DateTimeField, UnaryOperator};

use crate::errors::SqlError;
use crate::functions::{self, Function};
use crate::parse::TABLE_ARG;
use crate::types::{DataType, Field, Value, parse_date, parse_timestamp};

/// A column a clause can name.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeColumn {
    /// The table or alias it comes from.
    pub qualifier: Option<String>,
    /// Its name.
    pub name: String,
    /// Its type.
    pub data_type: DataType,
}

/// The columns an expression is compiled against, in row order.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The row's columns.
    pub columns: Vec<ScopeColumn>,
    /// Expressions (by their SQL text) that are already computed into a column: GROUP BY
    /// keys and aggregate calls after an aggregation.
    pub substitutions: Vec<(String, usize)>,
}

impl Scope {
    /// A scope over `fields`, all under `qualifier`.
    pub fn of(qualifier: Option<&str>, fields: &[Field]) -> Scope {
        Scope {
            columns: fields
                .iter()
                .map(|f| ScopeColumn {
                    qualifier: qualifier.map(str::to_string),
                    name: f.name.clone(),
                    data_type: f.data_type.clone(),
                })
                .collect(),
            substitutions: Vec::new(),
        }
    }

    /// The fields of the row.
    pub fn fields(&self) -> Vec<Field> {
        self.columns
            .iter()
            .map(|c| Field::new(c.name.clone(), c.data_type.clone()))
            .collect()
    }

    /// The columns in scope as an error names them (`t.col`).
    pub fn candidates_public(&self) -> Vec<String> {
        self.candidates()
    }

    fn candidates(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|c| match &c.qualifier {
                Some(q) => format!("{q}.{}", c.name),
                None => c.name.clone(),
            })
            .collect()
    }

    /// The position of column `name` (optionally under `qualifier`).
    pub fn resolve(&self, qualifier: Option<&str>, name: &str) -> Result<usize, SqlError> {
        let mut found = self.columns.iter().enumerate().filter(|(_, c)| {
            c.name.eq_ignore_ascii_case(name)
                && qualifier.is_none_or(|q| {
                    c.qualifier
                        .as_deref()
                        .is_some_and(|cq| cq.eq_ignore_ascii_case(q))
                })
        });
        match (found.next(), found.next()) {
            (Some((i, _)), None) => Ok(i),
            (Some(_), Some(_)) => Err(SqlError::Type(format!(
                "column {name} is ambiguous; qualify it with its table"
            ))),
            (None, _) => Err(SqlError::UnknownColumn {
                name: match qualifier {
                    Some(q) => format!("{q}.{name}"),
                    None => name.to_string(),
                },
                candidates: self.candidates(),
            }),
        }
    }
}

/// Binary operators after type checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// +
    Add,
    /// -
    Sub,
    /// *
    Mul,
    /// /
    Div,
    /// %
    Mod,
    /// =
    Eq,
    /// <>
    NotEq,
    /// <
    Lt,
    /// <=
    LtEq,
    /// >
    Gt,
    /// >=
    GtEq,
    /// ||
    Concat,
}

/// What evaluation may read besides the row.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    /// The operator's current watermark (`CURRENT_WATERMARK`), None before the first.
    pub watermark: Option<i64>,
}

/// A compiled expression.
#[derive(Clone)]
pub enum Expr {
    /// A column of the input row.
    Column(usize),
    /// A constant.
    Literal(Value),
    /// A field of a ROW value.
    Field(Box<Expr>, usize),
    /// `array[i]` (1-based) or `map[key]`.
    Index(Box<Expr>, Box<Expr>),
    /// NOT
    Not(Box<Expr>),
    /// unary minus
    Neg(Box<Expr>),
    /// AND (three-valued)
    And(Box<Expr>, Box<Expr>),
    /// OR (three-valued)
    Or(Box<Expr>, Box<Expr>),
    /// A binary operator.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// IS [NOT] NULL
    IsNull(Box<Expr>, bool),
    /// IS [NOT] TRUE / FALSE: (expr, value, negated)
    IsBool(Box<Expr>, bool, bool),
    /// [NOT] IN (list)
    InList(Box<Expr>, Vec<Expr>, bool),
    /// [NOT] LIKE, compiled to a regex
    Like(Box<Expr>, Arc<Regex>, bool),
    /// CASE WHEN ... THEN ... ELSE ... END
    Case(Vec<(Expr, Expr)>, Option<Box<Expr>>),
    /// CAST / TRY_CAST
    Cast(Box<Expr>, DataType, bool),
    /// A scalar function.
    Call(Arc<Function>, Vec<Expr>),
    /// CURRENT_WATERMARK(col)
    CurrentWatermark,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::Column(i) => write!(f, "${i}"),
            Expr::Literal(v) => write!(f, "{v:?}"),
            Expr::Call(func, args) => write!(f, "{}({args:?})", func.name),
            Expr::Binary(op, a, b) => write!(f, "({a:?} {op:?} {b:?})"),
            _ => f.write_str("expr"),
        }
    }
}

/// A compiled expression with its type.
#[derive(Debug, Clone)]
pub struct Typed {
    /// The expression.
    pub expr: Expr,
    /// Its type.
    pub data_type: DataType,
}

impl Expr {
    /// Evaluates on `row`.
    pub fn eval(&self, row: &[Value], ctx: &Context) -> Result<Value, SqlError> {
        Ok(match self {
            Expr::Column(i) => row.get(*i).cloned().unwrap_or(Value::Null),
            Expr::Literal(v) => v.clone(),
            Expr::Field(e, i) => match e.eval(row, ctx)? {
                Value::Row(values) => values.get(*i).cloned().unwrap_or(Value::Null),
                _ => Value::Null,
            },
            Expr::Index(e, index) => match (e.eval(row, ctx)?, index.eval(row, ctx)?) {
                (Value::Array(items), Value::Int(i)) if i >= 1 => {
                    items.get((i - 1) as usize).cloned().unwrap_or(Value::Null)
                }
                (Value::Map(entries), key) => entries
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map_or(Value::Null, |(_, v)| v.clone()),
                _ => Value::Null,
            },
            Expr::Not(e) => match e.eval(row, ctx)? {
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::Null,
            },
            Expr::Neg(e) => match e.eval(row, ctx)? {
                Value::Int(i) => Value::Int(i.wrapping_neg()),
                Value::Float(f) => Value::Float(-f),
                Value::Interval(i) => Value::Interval(-i),
                _ => Value::Null,
            },
            Expr::And(a, b) => match a.eval(row, ctx)? {
                Value::Bool(false) => Value::Bool(false),
                left => match (left, b.eval(row, ctx)?) {
                    (_, Value::Bool(false)) => Value::Bool(false),
                    (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
                    _ => Value::Null,
                },
            },
            Expr::Or(a, b) => match a.eval(row, ctx)? {
                Value::Bool(true) => Value::Bool(true),
                left => match (left, b.eval(row, ctx)?) {
                    (_, Value::Bool(true)) => Value::Bool(true),
                    (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
                    _ => Value::Null,
                },
            },
            Expr::Binary(op, a, b) => binary(*op, a.eval(row, ctx)?, b.eval(row, ctx)?)?,
            Expr::IsNull(e, negated) => Value::Bool(e.eval(row, ctx)?.is_null() != *negated),
            Expr::IsBool(e, want, negated) => {
                let is = matches!(e.eval(row, ctx)?, Value::Bool(b) if b == *want);
                Value::Bool(is != *negated)
            }
            Expr::InList(e, list, negated) => {
                let v = e.eval(row, ctx)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                let mut saw_null = false;
                for item in list {
                    let x = item.eval(row, ctx)?;
                    if x.is_null() {
                        saw_null = true;
                    } else if x == v {
                        return Ok(Value::Bool(!negated));
                    }
                }
                if saw_null {
                    Value::Null
                } else {
                    Value::Bool(*negated)
                }
            }
            Expr::Like(e, regex, negated) => match e.eval(row, ctx)? {
                Value::Str(s) => Value::Bool(regex.is_match(&s) != *negated),
                _ => Value::Null,
            },
            Expr::Case(whens, otherwise) => {
                for (when, then) in whens {
                    if when.eval(row, ctx)?.is_true() {
                        return then.eval(row, ctx);
                    }
                }
                match otherwise {
                    Some(e) => e.eval(row, ctx)?,
                    None => Value::Null,
                }
            }
            Expr::Cast(e, to, try_cast) => {
                let v = e.eval(row, ctx)?;
                match functions::cast(&v, to) {
                    Ok(v) => v,
                    Err(_) if *try_cast => Value::Null,
                    Err(e) => return Err(SqlError::Runtime(e)),
                }
            }
            Expr::Call(function, args) => {
                let values = args
                    .iter()
                    .map(|a| a.eval(row, ctx))
                    .collect::<Result<Vec<_>, _>>()?;
                function.call(&values).map_err(SqlError::Runtime)?
            }
            Expr::CurrentWatermark => ctx.watermark.map_or(Value::Null, Value::Timestamp),
        })
    }

    /// The constant this expression always is, if it reads no column.
    pub fn constant(&self) -> Option<Value> {
        match self {
            Expr::Literal(v) => Some(v.clone()),
            Expr::Neg(e) => match e.constant()? {
                Value::Int(i) => Some(Value::Int(-i)),
                Value::Float(f) => Some(Value::Float(-f)),
                Value::Interval(i) => Some(Value::Interval(-i)),
                _ => None,
            },
            Expr::Binary(op, a, b) => binary(*op, a.constant()?, b.constant()?).ok(),
            Expr::Cast(e, to, _) => functions::cast(&e.constant()?, to).ok(),
            _ => None,
        }
    }
}

fn numeric_result(a: &DataType, b: &DataType) -> DataType {
    if matches!(
        a,
        DataType::Float | DataType::Double | DataType::Decimal(..)
    ) || matches!(
        b,
        DataType::Float | DataType::Double | DataType::Decimal(..)
    ) {
        DataType::Double
    } else if matches!(a, DataType::BigInt) || matches!(b, DataType::BigInt) {
        DataType::BigInt
    } else {
        DataType::Int
    }
}

fn binary(op: BinOp, a: Value, b: Value) -> Result<Value, SqlError> {
    use Value as V;
    if a.is_null() || b.is_null() {
        return Ok(V::Null);
    }
    Ok(match op {
        BinOp::Eq => V::Bool(a == b),
        BinOp::NotEq => V::Bool(a != b),
        BinOp::Lt => V::Bool(a.total_cmp(&b).is_lt()),
        BinOp::LtEq => V::Bool(a.total_cmp(&b).is_le()),
        BinOp::Gt => V::Bool(a.total_cmp(&b).is_gt()),
        BinOp::GtEq => V::Bool(a.total_cmp(&b).is_ge()),
        BinOp::Concat => V::str(&format!("{a}{b}")),
        _ => match (a, b) {
            (V::Int(x), V::Int(y)) => match op {
                BinOp::Add => V::Int(x.wrapping_add(y)),
                BinOp::Sub => V::Int(x.wrapping_sub(y)),
                BinOp::Mul => V::Int(x.wrapping_mul(y)),
                BinOp::Div | BinOp::Mod if y == 0 => {
                    return Err(SqlError::Runtime("division by zero".into()));
                }
                BinOp::Div => V::Int(x.wrapping_div(y)),
                BinOp::Mod => V::Int(x.wrapping_rem(y)),
                _ => V::Null,
            },
            (V::Timestamp(t), V::Interval(i)) => match op {
                BinOp::Add => V::Timestamp(t + i),
                BinOp::Sub => V::Timestamp(t - i),
                _ => V::Null,
            },
            (V::Interval(i), V::Timestamp(t)) if op == BinOp::Add => V::Timestamp(t + i),
            (V::Date(d), V::Interval(i)) => {
                let ms = i64::from(d) * 86_400_000;
                let ms = if op == BinOp::Sub { ms - i } else { ms + i };
                V::Date(ms.div_euclid(86_400_000) as i32)
            }
            (V::Interval(x), V::Interval(y)) => match op {
                BinOp::Add => V::Interval(x + y),
                BinOp::Sub => V::Interval(x - y),
                _ => V::Null,
            },
            (V::Interval(x), V::Int(y)) | (V::Int(y), V::Interval(x)) if op == BinOp::Mul => {
                V::Interval(x * y)
            }
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => match op {
                    BinOp::Add => V::Float(x + y),
                    BinOp::Sub => V::Float(x - y),
                    BinOp::Mul => V::Float(x * y),
                    BinOp::Div => V::Float(x / y),
                    BinOp::Mod => V::Float(x % y),
                    _ => V::Null,
                },
                _ => V::Null,
            },
        },
    })
}

/// Compiles `expr` against `scope`.
pub fn compile(expr: &ast::Expr, scope: &Scope) -> Result<Typed, SqlError> {
    if !scope.substitutions.is_empty() {
        let text = expr.to_string();
        if let Some((_, i)) = scope
            .substitutions
            .iter()
            .find(|(s, _)| s.eq_ignore_ascii_case(&text))
        {
            return Ok(Typed {
                expr: Expr::Column(*i),
                data_type: scope.columns[*i].data_type.clone(),
            });
        }
    }
    let typed = |expr: Expr, data_type: DataType| Ok(Typed { expr, data_type });
    match expr {
        ast::Expr::Identifier(ident) => column(scope, None, &ident.value, &[]),
        ast::Expr::CompoundIdentifier(parts) => {
            let names: Vec<&str> = parts.iter().map(|p| p.value.as_str()).collect();
            // `t.col.field...` or `col.field...`
            let is_qualifier = scope.columns.iter().any(|c| {
                c.qualifier
                    .as_deref()
                    .is_some_and(|q| q.eq_ignore_ascii_case(names[0]))
            });
            let is_column = scope.resolve(None, names[0]).is_ok();
            if names.len() >= 2
                && (scope.resolve(Some(names[0]), names[1]).is_ok() || (is_qualifier && !is_column))
            {
                column(scope, Some(names[0]), names[1], &names[2..])
            } else {
                column(scope, None, names[0], &names[1..])
            }
        }
        ast::Expr::CompoundFieldAccess { root, access_chain } => {
            let mut current = compile(root, scope)?;
            for access in access_chain {
                current = match access {
                    ast::AccessExpr::Dot(ast::Expr::Identifier(ident)) => {
                        field(current, &ident.value)?
                    }
                    ast::AccessExpr::Subscript(ast::Subscript::Index { index }) => {
                        let index = compile(index, scope)?;
                        let data_type = match &current.data_type {
                            DataType::Array(item) => (**item).clone(),
                            DataType::Map(_, value) => (**value).clone(),
                            other => {
                                return Err(SqlError::Type(format!(
                                    "cannot index a value of type {other}"
                                )));
                            }
                        };
                        Typed {
                            expr: Expr::Index(Box::new(current.expr), Box::new(index.expr)),
                            data_type,
                        }
                    }
                    other => {
                        return Err(SqlError::Unsupported(format!("field access {other}")));
                    }
                };
            }
            Ok(current)
        }
        ast::Expr::Value(v) => literal(&v.value),
        ast::Expr::Nested(e) => compile(e, scope),
        ast::Expr::UnaryOp { op, expr } => {
            let e = compile(expr, scope)?;
            match op {
                UnaryOperator::Not => {
                    expect_boolean(&e, "NOT")?;
                    typed(Expr::Not(Box::new(e.expr)), DataType::Boolean)
                }
                UnaryOperator::Minus => typed(Expr::Neg(Box::new(e.expr)), e.data_type),
                UnaryOperator::Plus => Ok(e),
                other => Err(SqlError::Unsupported(format!("operator {other}"))),
            }
        }
        ast::Expr::BinaryOp { left, op, right } => {
            let a = compile(left, scope)?;
            let b = compile(right, scope)?;
            binary_op(op, a, b)
        }
        ast::Expr::IsNull(e) => typed(
            Expr::IsNull(Box::new(compile(e, scope)?.expr), false),
            DataType::Boolean,
        ),
        ast::Expr::IsNotNull(e) => typed(
            Expr::IsNull(Box::new(compile(e, scope)?.expr), true),
            DataType::Boolean,
        ),
        ast::Expr::IsTrue(e) => is_bool(compile(e, scope)?, true, false),
        ast::Expr::IsNotTrue(e) => is_bool(compile(e, scope)?, true, true),
        ast::Expr::IsFalse(e) => is_bool(compile(e, scope)?, false, false),
        ast::Expr::IsNotFalse(e) => is_bool(compile(e, scope)?, false, true),
        ast::Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let e = compile(expr, scope)?;
            let low = binary_op(&BinaryOperator::GtEq, e.clone(), compile(low, scope)?)?;
            let high = binary_op(&BinaryOperator::LtEq, e, compile(high, scope)?)?;
            let both = Expr::And(Box::new(low.expr), Box::new(high.expr));
            typed(
                if *negated {
                    Expr::Not(Box::new(both))
                } else {
                    both
                },
                DataType::Boolean,
            )
        }
        ast::Expr::InList {
            expr,
            list,
            negated,
        } => {
            let e = compile(expr, scope)?;
            let items = list
                .iter()
                .map(|item| {
                    let item = compile(item, scope)?;
                    Ok(coerce_to(item, &e.data_type).expr)
                })
                .collect::<Result<Vec<_>, SqlError>>()?;
            typed(
                Expr::InList(Box::new(e.expr), items, *negated),
                DataType::Boolean,
            )
        }
        ast::Expr::Like {
            negated,
            expr: subject,
            pattern,
            escape_char,
            any: false,
        }
        | ast::Expr::ILike {
            negated,
            expr: subject,
            pattern,
            escape_char,
            any: false,
        } => {
            let case_insensitive = matches!(expr, ast::Expr::ILike { .. });
            let e = compile(subject, scope)?;
            let p = compile(pattern, scope)?;
            let Some(Value::Str(text)) = p.expr.constant() else {
                return Err(SqlError::Unsupported(
                    "LIKE with a pattern that is not a constant string".into(),
                ));
            };
            let escape = match escape_char {
                Some(ast::Value::SingleQuotedString(s)) => s.chars().next(),
                _ => None,
            };
            let regex = like_regex(&text, escape, case_insensitive)?;
            typed(
                Expr::Like(Box::new(e.expr), Arc::new(regex), *negated),
                DataType::Boolean,
            )
        }
        ast::Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            let operand = operand.as_ref().map(|o| compile(o, scope)).transpose()?;
            let mut whens = Vec::new();
            let mut result_type = DataType::Null;
            for when in conditions {
                let condition = compile(&when.condition, scope)?;
                let condition = match &operand {
                    Some(o) => Typed {
                        expr: Expr::Binary(
                            BinOp::Eq,
                            Box::new(o.expr.clone()),
                            Box::new(coerce_to(condition, &o.data_type).expr),
                        ),
                        data_type: DataType::Boolean,
                    },
                    None => condition,
                };
                let result = compile(&when.result, scope)?;
                result_type = common_type(&result_type, &result.data_type);
                whens.push((condition.expr, result.expr));
            }
            let otherwise = match else_result {
                Some(e) => {
                    let e = compile(e, scope)?;
                    result_type = common_type(&result_type, &e.data_type);
                    Some(Box::new(e.expr))
                }
                None => None,
            };
            typed(Expr::Case(whens, otherwise), result_type)
        }
        ast::Expr::Cast {
            kind,
            expr,
            data_type,
            ..
        } => {
            let e = compile(expr, scope)?;
            let to = data_type_of(data_type)?;
            functions::check_cast(&e.data_type, &to).map_err(SqlError::Type)?;
            let try_cast = matches!(kind, ast::CastKind::TryCast | ast::CastKind::SafeCast);
            typed(Expr::Cast(Box::new(e.expr), to.clone(), try_cast), to)
        }
        ast::Expr::Interval(interval) => interval_literal(interval, scope),
        ast::Expr::TypedString(ts) => {
            let to = data_type_of(&ts.data_type)?;
            let text = match &ts.value.value {
                ast::Value::SingleQuotedString(s) => s.clone(),
                other => other.to_string(),
            };
            let value = match &to {
                DataType::Timestamp(_) | DataType::TimestampLtz(_) => Value::Timestamp(
                    parse_timestamp(&text)
                        .ok_or_else(|| SqlError::Type(format!("'{text}' is not a timestamp")))?,
                ),
                DataType::Date => Value::Date(
                    parse_date(&text)
                        .ok_or_else(|| SqlError::Type(format!("'{text}' is not a date")))?,
                ),
                _ => functions::cast(&Value::str(&text), &to).map_err(SqlError::Type)?,
            };
            typed(Expr::Literal(value), to)
        }
        ast::Expr::Extract { field, expr, .. } => {
            let unit = datetime_unit(field)?;
            let e = compile(expr, scope)?;
            call_function(
                "EXTRACT",
                vec![
                    Typed {
                        expr: Expr::Literal(Value::str(unit)),
                        data_type: DataType::String,
                    },
                    e,
                ],
            )
        }
        ast::Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            let mut args = vec![compile(expr, scope)?];
            args.push(match substring_from {
                Some(from) => compile(from, scope)?,
                None => Typed {
                    expr: Expr::Literal(Value::Int(1)),
                    data_type: DataType::Int,
                },
            });
            if let Some(len) = substring_for {
                args.push(compile(len, scope)?);
            }
            call_function("SUBSTRING", args)
        }
        ast::Expr::Trim {
            expr,
            trim_where,
            trim_what,
            trim_characters,
        } => {
            let mut args = vec![compile(expr, scope)?];
            let chars = match (trim_what, trim_characters) {
                (Some(what), _) => compile(what, scope)?,
                (None, Some(list)) if !list.is_empty() => compile(&list[0], scope)?,
                _ => Typed {
                    expr: Expr::Literal(Value::str(" ")),
                    data_type: DataType::String,
                },
            };
            args.push(chars);
            let mode = match trim_where {
                Some(ast::TrimWhereField::Leading) => "LEADING",
                Some(ast::TrimWhereField::Trailing) => "TRAILING",
                _ => "BOTH",
            };
            args.push(Typed {
                expr: Expr::Literal(Value::str(mode)),
                data_type: DataType::String,
            });
            call_function("TRIM", args)
        }
        ast::Expr::Position { expr, r#in } => call_function(
            "POSITION",
            vec![compile(expr, scope)?, compile(r#in, scope)?],
        ),
        ast::Expr::Function(f) => function(f, scope),
        ast::Expr::Subquery(_) | ast::Expr::Exists { .. } | ast::Expr::InSubquery { .. } => Err(
            SqlError::Unsupported("subqueries in expressions (use a join)".into()),
        ),
        other => Err(SqlError::Unsupported(format!("the expression {other}"))),
    }
}

fn column(
    scope: &Scope,
    qualifier: Option<&str>,
    name: &str,
    path: &[&str],
) -> Result<Typed, SqlError> {
    let i = scope.resolve(qualifier, name)?;
    let mut current = Typed {
        expr: Expr::Column(i),
        data_type: scope.columns[i].data_type.clone(),
    };
    for part in path {
        current = field(current, part)?;
    }
    Ok(current)
}

fn field(value: Typed, name: &str) -> Result<Typed, SqlError> {
    match value.data_type.field(name) {
        Some((i, f)) => Ok(Typed {
            data_type: f.data_type.clone(),
            expr: Expr::Field(Box::new(value.expr), i),
        }),
        None => Err(SqlError::UnknownColumn {
            name: name.to_string(),
            candidates: match &value.data_type {
                DataType::Row(fields) => fields.iter().map(|f| f.name.clone()).collect(),
                _ => Vec::new(),
            },
        }),
    }
}

fn literal(value: &ast::Value) -> Result<Typed, SqlError> {
    let (value, data_type) = match value {
        ast::Value::Number(n, _) => {
            if let Ok(i) = n.parse::<i64>() {
                let t = if i32::try_from(i).is_ok() {
                    DataType::Int
                } else {
                    DataType::BigInt
                };
                (Value::Int(i), t)
            } else {
                let f: f64 = n
                    .parse()
                    .map_err(|_| SqlError::Type(format!("{n} is not a number")))?;
                let t = if n.contains(['e', 'E']) {
                    DataType::Double
                } else {
                    let scale = n.split_once('.').map_or(0, |(_, s)| s.len()) as u8;
                    DataType::Decimal(n.len().min(38) as u8, scale)
                };
                (Value::Float(f), t)
            }
        }
        ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
            (Value::str(s), DataType::String)
        }
        ast::Value::Boolean(b) => (Value::Bool(*b), DataType::Boolean),
        ast::Value::Null => (Value::Null, DataType::Null),
        other => return Err(SqlError::Unsupported(format!("the literal {other}"))),
    };
    Ok(Typed {
        expr: Expr::Literal(value),
        data_type,
    })
}

fn interval_literal(interval: &ast::Interval, scope: &Scope) -> Result<Typed, SqlError> {
    let value = compile(&interval.value, scope)?;
    let text = match value.expr.constant() {
        Some(Value::Str(s)) => s.to_string(),
        Some(Value::Int(i)) => i.to_string(),
        Some(Value::Float(f)) => f.to_string(),
        _ => {
            return Err(SqlError::Unsupported(
                "INTERVAL with a value that is not a constant".into(),
            ));
        }
    };
    let unit_ms = |field: &DateTimeField| -> Result<i64, SqlError> {
        Ok(match field {
            DateTimeField::Millisecond | DateTimeField::Milliseconds => 1,
            DateTimeField::Second | DateTimeField::Seconds => 1000,
            DateTimeField::Minute | DateTimeField::Minutes => 60_000,
            DateTimeField::Hour | DateTimeField::Hours => 3_600_000,
            DateTimeField::Day | DateTimeField::Days => 86_400_000,
            DateTimeField::Week(_) | DateTimeField::Weeks => 7 * 86_400_000,
            other => {
                return Err(SqlError::Unsupported(format!(
                    "INTERVAL ... {other} (year-month intervals)"
                )));
            }
        })
    };
    let leading = interval
        .leading_field
        .as_ref()
        .ok_or_else(|| SqlError::Type(format!("INTERVAL '{text}' needs a unit")))?;
    let ms = match &interval.last_field {
        None => {
            let n: f64 = text.trim().parse().map_err(|_| {
                SqlError::Type(format!("INTERVAL '{text}' {leading}: not a number"))
            })?;
            (n * unit_ms(leading)? as f64).round() as i64
        }
        Some(last) => {
            // 'D HH:MM:SS.fff' style: split the text on separators from the leading unit down.
            let units = [86_400_000i64, 3_600_000, 60_000, 1000];
            let start = units
                .iter()
                .position(|u| *u == unit_ms(leading).unwrap_or(0))
                .ok_or_else(|| SqlError::Unsupported(format!("INTERVAL {leading} TO {last}")))?;
            let (negative, body) = match text.trim().strip_prefix('-') {
                Some(rest) => (true, rest.to_string()),
                None => (false, text.trim().to_string()),
            };
            let parts: Vec<&str> = body.split([' ', ':']).collect();
            let mut total = 0i64;
            for (i, part) in parts.iter().enumerate() {
                let unit = units
                    .get(start + i)
                    .copied()
                    .ok_or_else(|| SqlError::Type(format!("INTERVAL '{text}': too many fields")))?;
                let n: f64 = part
                    .parse()
                    .map_err(|_| SqlError::Type(format!("INTERVAL '{text}': not a number")))?;
                total += (n * unit as f64).round() as i64;
            }
            if negative { -total } else { total }
        }
    };
    Ok(Typed {
        expr: Expr::Literal(Value::Interval(ms)),
        data_type: DataType::Interval,
    })
}

fn datetime_unit(field: &DateTimeField) -> Result<&'static str, SqlError> {
    Ok(match field {
        DateTimeField::Year | DateTimeField::Years => "YEAR",
        DateTimeField::Quarter => "QUARTER",
        DateTimeField::Month | DateTimeField::Months => "MONTH",
        DateTimeField::Week(_) | DateTimeField::Weeks => "WEEK",
        DateTimeField::Day | DateTimeField::Days => "DAY",
        DateTimeField::DayOfYear | DateTimeField::Doy => "DOY",
        DateTimeField::DayOfWeek | DateTimeField::Dow => "DOW",
        DateTimeField::Hour | DateTimeField::Hours => "HOUR",
        DateTimeField::Minute | DateTimeField::Minutes => "MINUTE",
        DateTimeField::Second | DateTimeField::Seconds => "SECOND",
        DateTimeField::Millisecond | DateTimeField::Milliseconds => "MILLISECOND",
        DateTimeField::Epoch => "EPOCH",
        other => return Err(SqlError::Unsupported(format!("EXTRACT({other} FROM ...)"))),
    })
}

/// A Flink type from `sqlparser`'s (through its text, parsed as Flink's).
pub fn data_type_of(data_type: &ast::DataType) -> Result<DataType, SqlError> {
    let text = data_type.to_string();
    data_type_from_text(&text)
}

/// A Flink type from its text.
pub fn data_type_from_text(text: &str) -> Result<DataType, SqlError> {
    let dialect = crate::parse::FlinkDialect;
    let mut parser = sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| SqlError::Type(e.to_string()))?;
    crate::parse::data_type(&mut parser).map_err(|e| SqlError::Type(e.to_string()))
}

fn expect_boolean(e: &Typed, what: &str) -> Result<(), SqlError> {
    if matches!(e.data_type, DataType::Boolean | DataType::Null) {
        Ok(())
    } else {
        Err(SqlError::Type(format!(
            "{what} expects a BOOLEAN, got {}",
            e.data_type
        )))
    }
}

fn is_bool(e: Typed, want: bool, negated: bool) -> Result<Typed, SqlError> {
    expect_boolean(&e, "IS TRUE/FALSE")?;
    Ok(Typed {
        expr: Expr::IsBool(Box::new(e.expr), want, negated),
        data_type: DataType::Boolean,
    })
}

/// The type both `a` and `b` fit in (for CASE, COALESCE, UNION).
pub fn common_type(a: &DataType, b: &DataType) -> DataType {
    match (a, b) {
        (DataType::Null, t) | (t, DataType::Null) => t.clone(),
        (x, y) if x == y => x.clone(),
        (x, y) if x.is_numeric() && y.is_numeric() => numeric_result(x, y),
        (x, y) if x.is_timestamp() && y.is_timestamp() => x.clone(),
        (x, _) => x.clone(),
    }
}

/// A string constant compared with a timestamp or date becomes one.
fn coerce_to(e: Typed, to: &DataType) -> Typed {
    if e.data_type == DataType::String
        && (to.is_timestamp() || *to == DataType::Date || to.is_numeric())
        && let Some(v) = e.expr.constant()
        && let Ok(converted) = functions::cast(&v, to)
    {
        return Typed {
            expr: Expr::Literal(converted),
            data_type: to.clone(),
        };
    }
    e
}

fn binary_op(op: &BinaryOperator, a: Typed, b: Typed) -> Result<Typed, SqlError> {
    let comparable = |a: &DataType, b: &DataType| {
        matches!(a, DataType::Null)
            || matches!(b, DataType::Null)
            || a == b
            || (a.is_numeric() && b.is_numeric())
            || (a.is_timestamp() && b.is_timestamp())
            || (matches!(a, DataType::Row(_)) && matches!(b, DataType::Row(_)))
    };
    let (op, data_type) = match op {
        BinaryOperator::And | BinaryOperator::Or => {
            expect_boolean(&a, &op.to_string())?;
            expect_boolean(&b, &op.to_string())?;
            let expr = if *op == BinaryOperator::And {
                Expr::And(Box::new(a.expr), Box::new(b.expr))
            } else {
                Expr::Or(Box::new(a.expr), Box::new(b.expr))
            };
            return Ok(Typed {
                expr,
                data_type: DataType::Boolean,
            });
        }
        BinaryOperator::Eq
        | BinaryOperator::NotEq
        | BinaryOperator::Lt
        | BinaryOperator::LtEq
        | BinaryOperator::Gt
        | BinaryOperator::GtEq => {
            let b = coerce_to(b, &a.data_type);
            let a = coerce_to(a, &b.data_type);
            if !comparable(&a.data_type, &b.data_type) {
                return Err(SqlError::Type(format!(
                    "cannot compare {} with {}",
                    a.data_type, b.data_type
                )));
            }
            let op = match op {
                BinaryOperator::Eq => BinOp::Eq,
                BinaryOperator::NotEq => BinOp::NotEq,
                BinaryOperator::Lt => BinOp::Lt,
                BinaryOperator::LtEq => BinOp::LtEq,
                BinaryOperator::Gt => BinOp::Gt,
                _ => BinOp::GtEq,
            };
            return Ok(Typed {
                expr: Expr::Binary(op, Box::new(a.expr), Box::new(b.expr)),
                data_type: DataType::Boolean,
            });
        }
        BinaryOperator::StringConcat => (BinOp::Concat, DataType::String),
        BinaryOperator::Plus | BinaryOperator::Minus => {
            let op = if *op == BinaryOperator::Plus {
                BinOp::Add
            } else {
                BinOp::Sub
            };
            let t = match (&a.data_type, &b.data_type) {
                (x, y) if x.is_numeric() && y.is_numeric() => numeric_result(x, y),
                (t, DataType::Interval) if t.is_timestamp() || *t == DataType::Date => t.clone(),
                (DataType::Interval, t) if op == BinOp::Add && t.is_timestamp() => t.clone(),
                (DataType::Interval, DataType::Interval) => DataType::Interval,
                (DataType::Null, t) | (t, DataType::Null) => t.clone(),
                (x, y) => {
                    return Err(SqlError::Type(format!(
                        "cannot apply {op:?} to {x} and {y}",
                        op = if op == BinOp::Add { '+' } else { '-' }
                    )));
                }
            };
            (op, t)
        }
        BinaryOperator::Multiply | BinaryOperator::Divide | BinaryOperator::Modulo => {
            let bop = match op {
                BinaryOperator::Multiply => BinOp::Mul,
                BinaryOperator::Divide => BinOp::Div,
                _ => BinOp::Mod,
            };
            let t = match (&a.data_type, &b.data_type) {
                (x, y) if x.is_numeric() && y.is_numeric() => numeric_result(x, y),
                (DataType::Interval, y) | (y, DataType::Interval)
                    if bop == BinOp::Mul && y.is_integer() =>
                {
                    DataType::Interval
                }
                (DataType::Null, t) | (t, DataType::Null) => t.clone(),
                (x, y) => {
                    return Err(SqlError::Type(format!("cannot apply {op} to {x} and {y}")));
                }
            };
            (bop, t)
        }
        other => return Err(SqlError::Unsupported(format!("operator {other}"))),
    };
    Ok(Typed {
        expr: Expr::Binary(op, Box::new(a.expr), Box::new(b.expr)),
        data_type,
    })
}

fn like_regex(pattern: &str, escape: Option<char>, insensitive: bool) -> Result<Regex, SqlError> {
    let mut out = String::from(if insensitive { "(?si)^" } else { "(?s)^" });
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            if let Some(next) = chars.next() {
                out.push_str(&regex::escape(&next.to_string()));
            }
            continue;
        }
        match c {
            '%' => out.push_str(".*"),
            '_' => out.push('.'),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    Regex::new(&out).map_err(|e| SqlError::Type(format!("LIKE '{pattern}': {e}")))
}

/// Function arguments as plain expressions (named arguments by position).
pub fn function_args(f: &ast::Function) -> Result<Vec<&ast::Expr>, SqlError> {
    match &f.args {
        ast::FunctionArguments::None => Ok(Vec::new()),
        ast::FunctionArguments::Subquery(_) => {
            Err(SqlError::Unsupported("a subquery as an argument".into()))
        }
        ast::FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|arg| match arg {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e))
                | ast::FunctionArg::Named {
                    arg: ast::FunctionArgExpr::Expr(e),
                    ..
                }
                | ast::FunctionArg::ExprNamed {
                    arg: ast::FunctionArgExpr::Expr(e),
                    ..
                } => Ok(e),
                other => Err(SqlError::Unsupported(format!("the argument {other}"))),
            })
            .collect(),
    }
}

/// The function's name, upper case.
pub fn function_name(f: &ast::Function) -> String {
    f.name.to_string().to_ascii_uppercase()
}

/// Whether `name` is an aggregate function.
pub fn is_aggregate(name: &str) -> bool {
    matches!(
        name,
        "COUNT" | "SUM" | "MIN" | "MAX" | "AVG" | "FIRST_VALUE" | "LAST_VALUE" | "LISTAGG"
    )
}

fn function(f: &ast::Function, scope: &Scope) -> Result<Typed, SqlError> {
    let name = function_name(f);
    if f.over.is_some() {
        return Err(SqlError::Unsupported(format!(
            "{name}(...) OVER outside the top-N and deduplication patterns"
        )));
    }
    if is_aggregate(&name) {
        return Err(SqlError::Type(format!(
            "aggregate {name}(...) is not allowed here (only in SELECT and HAVING of a grouped query)"
        )));
    }
    if matches!(
        name.as_str(),
        "TUMBLE"
            | "HOP"
            | "SESSION"
            | "CUMULATE"
            | "TUMBLE_START"
            | "TUMBLE_END"
            | "HOP_START"
            | "HOP_END"
            | "SESSION_START"
            | "SESSION_END"
            | "TUMBLE_ROWTIME"
            | "HOP_ROWTIME"
            | "SESSION_ROWTIME"
    ) {
        return Err(SqlError::Unsupported(format!(
            "{name}(...) as a group window function (Flink's deprecated syntax); use the window table functions: FROM TABLE({}(TABLE t, DESCRIPTOR(time_col), ...)) GROUP BY window_start, window_end",
            name.split('_').next().unwrap_or(&name)
        )));
    }
    if name == TABLE_ARG || name == "DESCRIPTOR" {
        return Err(SqlError::Type(format!(
            "{} is only allowed as an argument of a window function (TUMBLE, HOP, CUMULATE, SESSION)",
            if name == TABLE_ARG {
                "TABLE t"
            } else {
                "DESCRIPTOR"
            }
        )));
    }
    if name == "CURRENT_WATERMARK" {
        return Ok(Typed {
            expr: Expr::CurrentWatermark,
            data_type: DataType::Timestamp(3),
        });
    }
    let args = function_args(f)?
        .into_iter()
        .map(|a| compile(a, scope))
        .collect::<Result<Vec<_>, _>>()?;
    call_function(&name, args)
}

/// A call of scalar function `name` on compiled arguments.
pub fn call_function(name: &str, args: Vec<Typed>) -> Result<Typed, SqlError> {
    let types: Vec<DataType> = args.iter().map(|a| a.data_type.clone()).collect();
    let literals: Vec<Option<Value>> = args.iter().map(|a| a.expr.constant()).collect();
    let function = functions::resolve(name, &types, &literals).map_err(SqlError::Type)?;
    let data_type = function.return_type.clone();
    Ok(Typed {
        expr: Expr::Call(
            Arc::new(function),
            args.into_iter().map(|a| a.expr).collect(),
        ),
        data_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::FlinkDialect;

    fn scope() -> Scope {
        Scope::of(
            Some("t"),
            &[
                Field::new("a", DataType::BigInt),
                Field::new("s", DataType::String),
                Field::new("ts", DataType::Timestamp(3)),
                Field::new("r", DataType::Row(vec![Field::new("x", DataType::Double)])),
            ],
        )
    }

    fn eval(sql: &str, row: &[Value]) -> Result<Value, SqlError> {
        let e = sqlparser::parser::Parser::new(&FlinkDialect)
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| SqlError::Type(e.to_string()))?;
        compile(&e, &scope())?.expr.eval(row, &Context::default())
    }

    fn row() -> Vec<Value> {
        vec![
            Value::Int(7),
            Value::str("hello"),
            Value::Timestamp(parse_timestamp("2024-01-01 00:00:10").expect("ts")),
            Value::Row(vec![Value::Float(1.5)].into()),
        ]
    }

    #[test]
    fn expressions_evaluate() {
        let cases = [
            ("a + 1", "8"),
            ("a / 2", "3"),
            ("a / 2.0", "3.5"),
            ("a > 5 AND s LIKE 'he%'", "TRUE"),
            ("s NOT LIKE '_ello'", "FALSE"),
            ("a IN (1, 2, 7)", "TRUE"),
            ("a BETWEEN 8 AND 9", "FALSE"),
            ("CASE WHEN a > 10 THEN 'big' ELSE 'small' END", "small"),
            ("CASE a WHEN 7 THEN 'seven' END", "seven"),
            ("ts + INTERVAL '5' SECOND", "2024-01-01 00:00:15.000"),
            ("ts - INTERVAL '1' HOUR", "2023-12-31 23:00:10.000"),
            ("ts > TIMESTAMP '2024-01-01 00:00:00'", "TRUE"),
            ("ts < '2024-01-01 00:00:00'", "FALSE"),
            ("r.x * 2", "3"),
            ("t.r.x", "1.5"),
            ("NULL IS NULL", "TRUE"),
            ("a IS NOT NULL AND NULL", "NULL"),
            ("s || '!'", "hello!"),
            ("CAST(a AS STRING)", "7"),
            ("TRY_CAST(s AS INT)", "NULL"),
            ("INTERVAL '1 02:00:00' DAY TO SECOND", "+1 02:00:00.000"),
            ("-a", "-7"),
        ];
        for (sql, expected) in cases {
            let v = eval(sql, &row()).unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert_eq!(v.to_string(), expected, "{sql}");
        }
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let e = eval("nope + 1", &row()).expect_err("unknown");
        assert!(e.to_string().contains("column nope not found"), "{e}");
        assert!(e.to_string().contains("t.a"), "{e}");
        let e = eval("s + 1", &row()).expect_err("type");
        assert!(e.to_string().contains("STRING"), "{e}");
        let e = eval("a / 0", &row()).expect_err("runtime");
        assert!(e.to_string().contains("division by zero"), "{e}");
        let e = eval("COUNT(a)", &row()).expect_err("aggregate");
        assert!(e.to_string().contains("not allowed here"), "{e}");
    }
}
