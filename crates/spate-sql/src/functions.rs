//! Flink SQL's built-in scalar functions and `CAST`.
//!
//! [`resolve`] checks a call's arguments and settles its result type once, when a query is
//! planned, and returns a [`Function`] that evaluates the call row by row. Constant regexes,
//! date patterns, JSON paths and time units are compiled there, not per row (a pattern that is
//! not a constant is compiled when its text changes). [`cast`] and [`check_cast`] are `CAST`'s
//! conversions; `TRY_CAST` is the caller's (a failed [`cast`] becomes NULL).
//!
//! This module only computes: no I/O, no state beyond the caches of compiled patterns, and the
//! wall clock for `NOW()` and its kin. Times are UTC, as everywhere in Spate SQL. Departures
//! from Flink: regexes are the `regex` crate's syntax (Java's, less look-around and
//! back-references); lengths and positions count Unicode scalar values, not UTF-16 units;
//! DECIMAL is a double, so `CAST(DECIMAL AS STRING)` does not pad to the scale.

use std::fmt;
use std::iter::Peekable;
use std::str::Chars;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use regex::{NoExpand, Regex};
use spate_connect::transforms::timefmt::{Pattern, civil_from_days, days_from_civil};

use crate::types::{DataType, Value, parse_date, parse_timestamp};

const SECOND_MS: i64 = 1000;
const MINUTE_MS: i64 = 60 * SECOND_MS;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// The longest string REPEAT, LPAD and RPAD build, in bytes.
const MAX_STRING: usize = 1 << 26;
/// Flink's default pattern of TO_TIMESTAMP, UNIX_TIMESTAMP and FROM_UNIXTIME.
const TIMESTAMP_FORMAT: &str = "yyyy-MM-dd HH:mm:ss";

type Eval = dyn Fn(&[Value]) -> Result<Value, String> + Send + Sync;

/// A resolved scalar function: its result type and how to evaluate it.
#[derive(Clone)]
pub struct Function {
    /// The SQL name, upper case.
    pub name: &'static str,
    /// The result type.
    pub return_type: DataType,
    arity: usize,
    deterministic: bool,
    eval: Arc<Eval>,
}

impl Function {
    /// Evaluates on argument values (already evaluated; as many as the types it was resolved
    /// for). Err is a runtime error message (lowercase, no period), e.g.
    /// "cannot cast 'abc' to INT".
    pub fn call(&self, args: &[Value]) -> Result<Value, String> {
        if args.len() != self.arity {
            return Err(format!(
                "function {} was resolved for {} arguments, called with {}",
                self.name,
                self.arity,
                args.len()
            ));
        }
        (self.eval)(args)
    }

    /// Whether the result depends on the arguments alone: false for the wall clock (`NOW()`,
    /// `CURRENT_TIMESTAMP`, `PROCTIME()`, `UNIX_TIMESTAMP()`, ...) and `UUID()`, whose calls
    /// must not be folded into constants when a query is planned.
    pub fn is_deterministic(&self) -> bool {
        self.deterministic
    }

    fn volatile(mut self) -> Function {
        self.deterministic = false;
        self
    }
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .field("return_type", &self.return_type)
            .finish_non_exhaustive()
    }
}

// ------------------------------------------------------------------------------------------
// Resolution
// ------------------------------------------------------------------------------------------

const STRING_FUNCTIONS: &[&str] = &[
    "CHAR_LENGTH",
    "CHARACTER_LENGTH",
    "UPPER",
    "LOWER",
    "TRIM",
    "LTRIM",
    "RTRIM",
    "CONCAT",
    "CONCAT_WS",
    "SUBSTRING",
    "SUBSTR",
    "POSITION",
    "LOCATE",
    "INSTR",
    "REPLACE",
    "REGEXP_EXTRACT",
    "REGEXP_REPLACE",
    "REGEXP",
    "LPAD",
    "RPAD",
    "INITCAP",
    "REVERSE",
    "REPEAT",
    "SPLIT_INDEX",
    "LEFT",
    "RIGHT",
    "ASCII",
    "CHR",
    "TO_BASE64",
    "FROM_BASE64",
    "UUID",
];
const MATH_FUNCTIONS: &[&str] = &[
    "ABS", "MOD", "POWER", "POW", "SQRT", "LN", "LOG10", "LOG2", "LOG", "EXP", "FLOOR", "CEIL",
    "CEILING", "ROUND", "TRUNCATE", "SIGN", "PI", "E", "GREATEST", "LEAST", "SIN", "COS", "TAN",
    "COT", "ASIN", "ACOS", "ATAN", "ATAN2", "SINH", "COSH", "TANH", "DEGREES", "RADIANS",
];
const CONDITIONAL_FUNCTIONS: &[&str] = &["COALESCE", "IFNULL", "NULLIF", "IF"];
const TIME_FUNCTIONS: &[&str] = &[
    "TO_TIMESTAMP",
    "TO_TIMESTAMP_LTZ",
    "TO_DATE",
    "DATE_FORMAT",
    "UNIX_TIMESTAMP",
    "FROM_UNIXTIME",
    "YEAR",
    "QUARTER",
    "MONTH",
    "WEEK",
    "DAYOFYEAR",
    "DAYOFMONTH",
    "DAYOFWEEK",
    "HOUR",
    "MINUTE",
    "SECOND",
    "EXTRACT",
    "TIMESTAMPADD",
    "TIMESTAMPDIFF",
    "CURRENT_TIMESTAMP",
    "NOW",
    "LOCALTIMESTAMP",
    "CURRENT_DATE",
    "PROCTIME",
    "CURRENT_ROW_TIMESTAMP",
];
const JSON_FUNCTIONS: &[&str] = &["JSON_VALUE", "JSON_EXISTS", "JSON_QUERY"];

type Builder = fn(&Call<'_>) -> Result<Function, String>;

const CATEGORIES: [(&[&str], Builder); 5] = [
    (STRING_FUNCTIONS, string_function),
    (MATH_FUNCTIONS, math_function),
    (CONDITIONAL_FUNCTIONS, conditional_function),
    (TIME_FUNCTIONS, time_function),
    (JSON_FUNCTIONS, json_function),
];

/// Resolves `name` (any case) for arguments of `arg_types`; `literals[i]` is Some(value) when
/// argument i is a constant (so regexes and date patterns are compiled once here, not per
/// row). Err: a message naming the function and what was expected, e.g. "function SUBSTRING
/// expects 2 or 3 arguments, got 1", or "no function named FOO".
pub fn resolve(
    name: &str,
    arg_types: &[DataType],
    literals: &[Option<Value>],
) -> Result<Function, String> {
    for (names, build) in CATEGORIES {
        if let Some(canonical) = names.iter().copied().find(|n| n.eq_ignore_ascii_case(name)) {
            return build(&Call {
                name: canonical,
                types: arg_types,
                literals,
            });
        }
    }
    Err(format!("no function named {}", name.to_uppercase()))
}

/// Whether `name` is a known scalar function.
pub fn exists(name: &str) -> bool {
    CATEGORIES
        .iter()
        .any(|(names, _)| names.iter().any(|n| n.eq_ignore_ascii_case(name)))
}

/// A call being resolved: the function's name and its arguments' types and constants.
struct Call<'a> {
    name: &'static str,
    types: &'a [DataType],
    literals: &'a [Option<Value>],
}

impl Call<'_> {
    fn len(&self) -> usize {
        self.types.len()
    }

    fn arg(&self, i: usize) -> &DataType {
        self.types.get(i).unwrap_or(&DataType::Null)
    }

    fn literal_str(&self, i: usize) -> Option<&str> {
        self.literals
            .get(i)
            .and_then(Option::as_ref)
            .and_then(Value::as_str)
    }

    /// An error about the call as a whole.
    fn fail(&self, message: impl fmt::Display) -> String {
        format!("function {}: {message}", self.name)
    }

    fn arity(&self, min: usize, max: usize) -> Result<(), String> {
        let n = self.len();
        if (min..=max).contains(&n) {
            return Ok(());
        }
        let noun = |k: usize| if k == 1 { "argument" } else { "arguments" };
        let expected = if min == max && min == 0 {
            "no arguments".to_string()
        } else if min == max {
            format!("{min} {}", noun(min))
        } else if max == usize::MAX {
            format!("at least {min} {}", noun(min))
        } else if max == min + 1 {
            format!("{min} or {max} arguments")
        } else {
            format!("{min} to {max} arguments")
        };
        Err(format!(
            "function {} expects {expected}, got {n}",
            self.name
        ))
    }

    /// Checks argument `i` is NULL or satisfies `ok`.
    fn expect(&self, i: usize, what: &str, ok: impl Fn(&DataType) -> bool) -> Result<(), String> {
        let t = self.arg(i);
        if *t == DataType::Null || ok(t) {
            Ok(())
        } else {
            Err(format!(
                "function {} expects {what} as argument {}, got {t}",
                self.name,
                i + 1
            ))
        }
    }

    fn string(&self, i: usize) -> Result<(), String> {
        self.expect(i, "STRING", |t| *t == DataType::String)
    }

    /// Checks arguments `from..` are strings.
    fn strings(&self, from: usize) -> Result<(), String> {
        (from..self.len()).try_for_each(|i| self.string(i))
    }

    fn integer(&self, i: usize) -> Result<(), String> {
        self.expect(i, "an integer", DataType::is_integer)
    }

    fn numeric(&self, i: usize) -> Result<(), String> {
        self.expect(i, "a number", DataType::is_numeric)
    }

    fn temporal(&self, i: usize) -> Result<(), String> {
        self.expect(i, "a TIMESTAMP or DATE", is_datetime)
    }

    /// The type all arguments `from..` convert to.
    fn common_type(&self, from: usize) -> Result<DataType, String> {
        let mut common = DataType::Null;
        for t in self.types.iter().skip(from) {
            common = wider(&common, t).ok_or_else(|| {
                format!(
                    "function {} expects arguments of one type, got {common} and {t}",
                    self.name
                )
            })?;
        }
        Ok(common)
    }

    fn make<F>(&self, return_type: DataType, eval: F) -> Function
    where
        F: Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static,
    {
        Function {
            name: self.name,
            return_type,
            arity: self.len(),
            deterministic: true,
            eval: Arc::new(eval),
        }
    }

    /// A function that is NULL when any argument is.
    fn strict<F>(&self, return_type: DataType, eval: F) -> Function
    where
        F: Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static,
    {
        self.make(return_type, move |args| {
            if args.iter().any(Value::is_null) {
                Ok(Value::Null)
            } else {
                eval(args)
            }
        })
    }
}

fn is_datetime(t: &DataType) -> bool {
    t.is_timestamp() || *t == DataType::Date
}

fn int_rank(t: &DataType) -> u8 {
    match t {
        DataType::TinyInt => 1,
        DataType::SmallInt => 2,
        DataType::Int => 3,
        _ => 4,
    }
}

fn int_digits(t: &DataType) -> u8 {
    match t {
        DataType::TinyInt => 3,
        DataType::SmallInt => 5,
        DataType::Int => 10,
        _ => 19,
    }
}

/// The narrowest type both convert to (INT, BIGINT → BIGINT; INT, DOUBLE → DOUBLE; DATE,
/// TIMESTAMP → TIMESTAMP), None when they do not mix.
fn wider(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType as T;
    if a == b {
        return Some(a.clone());
    }
    Some(match (a, b) {
        (T::Null, t) | (t, T::Null) => t.clone(),
        (x, y) if x.is_integer() && y.is_integer() => {
            if int_rank(x) >= int_rank(y) {
                x.clone()
            } else {
                y.clone()
            }
        }
        (T::Double, y) | (y, T::Double) if y.is_numeric() => T::Double,
        (T::Float, y) | (y, T::Float) if y.is_integer() => T::Float,
        (T::Float, y) | (y, T::Float) if y.is_numeric() => T::Double,
        (T::Decimal(p1, s1), T::Decimal(p2, s2)) => {
            let scale = *s1.max(s2);
            let int = p1.saturating_sub(*s1).max(p2.saturating_sub(*s2));
            T::Decimal(int.saturating_add(scale).min(38), scale)
        }
        (T::Decimal(p, s), y) | (y, T::Decimal(p, s)) if y.is_integer() => {
            let int = p.saturating_sub(*s).max(int_digits(y));
            T::Decimal(int.saturating_add(*s).min(38), *s)
        }
        (T::Timestamp(p), T::Timestamp(q)) | (T::Timestamp(p), T::TimestampLtz(q)) => {
            T::Timestamp(*p.max(q))
        }
        (T::TimestampLtz(p), T::TimestampLtz(q)) | (T::TimestampLtz(p), T::Timestamp(q)) => {
            T::Timestamp(*p.max(q))
        }
        (T::Date, t) | (t, T::Date) if t.is_timestamp() => t.clone(),
        _ => return None,
    })
}

/// A value of one of the types [`wider`] merged, as the merged type.
fn coerce(value: &Value, to: &DataType) -> Value {
    match (value, to) {
        (Value::Int(i), DataType::Float | DataType::Double | DataType::Decimal(..)) => {
            Value::Float(*i as f64)
        }
        (Value::Date(d), t) if t.is_timestamp() => Value::Timestamp(i64::from(*d) * DAY_MS),
        (v, _) => v.clone(),
    }
}

// Argument values, once resolution has checked their types.

fn mismatch(expected: &str, value: &Value) -> String {
    format!("expected {expected}, got {value}")
}

fn text(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| mismatch("a string", value))
}

fn int(value: &Value) -> Result<i64, String> {
    match value {
        Value::Int(i) => Ok(*i),
        other => Err(mismatch("an integer", other)),
    }
}

fn num(value: &Value) -> Result<f64, String> {
    value.as_f64().ok_or_else(|| mismatch("a number", value))
}

/// Milliseconds of a TIMESTAMP or DATE.
fn ms_of(value: &Value) -> Result<i64, String> {
    match value {
        Value::Timestamp(ms) => Ok(*ms),
        Value::Date(d) => Ok(i64::from(*d) * DAY_MS),
        other => Err(mismatch("a TIMESTAMP or DATE", other)),
    }
}

fn string_value(s: impl Into<Arc<str>>) -> Value {
    Value::Str(s.into())
}

/// A pattern argument (regex, date format, JSON path) compiled once: at resolution when it is
/// a constant, else whenever its text differs from the previous row's.
struct Compiled<T> {
    fixed: Option<T>,
    compile: fn(&str) -> Result<T, String>,
    last: Mutex<Option<(String, Result<T, String>)>>,
}

impl<T> Compiled<T> {
    /// Compiles argument `i` now if it is a constant; Err when that constant is invalid.
    fn new(c: &Call<'_>, i: usize, compile: fn(&str) -> Result<T, String>) -> Result<Self, String> {
        let fixed = match c.literal_str(i) {
            Some(text) => Some(compile(text).map_err(|e| c.fail(e))?),
            None => None,
        };
        Ok(Compiled {
            fixed,
            compile,
            last: Mutex::new(None),
        })
    }

    /// Applies `f` to the compiled `text`; Err when `text` does not compile.
    fn with<R>(&self, text: &str, f: impl FnOnce(&T) -> R) -> Result<R, String> {
        if let Some(compiled) = &self.fixed {
            return Ok(f(compiled));
        }
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.as_ref().is_none_or(|(key, _)| key != text) {
            *last = Some((text.to_string(), (self.compile)(text)));
        }
        match last.as_ref() {
            Some((_, Ok(compiled))) => Ok(f(compiled)),
            Some((_, Err(e))) => Err(e.clone()),
            None => Err(format!("'{text}' did not compile")),
        }
    }
}

fn compile_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| {
        let detail = e.to_string();
        let reason = detail.lines().last().unwrap_or_default();
        format!(
            "invalid regular expression '{pattern}': {}",
            reason.trim_start_matches("error: ")
        )
    })
}

fn compile_date_format(pattern: &str) -> Result<Pattern, String> {
    Pattern::parse(pattern).map_err(|e| format!("invalid date format '{pattern}': {e}"))
}

// ------------------------------------------------------------------------------------------
// String functions
// ------------------------------------------------------------------------------------------

fn string_function(c: &Call<'_>) -> Result<Function, String> {
    use DataType::{Boolean, Int, String};
    Ok(match c.name {
        "CHAR_LENGTH" | "CHARACTER_LENGTH" => {
            c.arity(1, 1)?;
            c.string(0)?;
            c.strict(Int, |a| Ok(Value::Int(text(&a[0])?.chars().count() as i64)))
        }
        "UPPER" | "LOWER" => {
            c.arity(1, 1)?;
            c.string(0)?;
            let upper = c.name == "UPPER";
            c.strict(String, move |a| {
                let s = text(&a[0])?;
                Ok(string_value(if upper {
                    s.to_uppercase()
                } else {
                    s.to_lowercase()
                }))
            })
        }
        "TRIM" | "LTRIM" | "RTRIM" => {
            c.arity(1, if c.name == "TRIM" { 3 } else { 2 })?;
            c.strings(0)?;
            let fixed = match c.name {
                "LTRIM" => Some((true, false)),
                "RTRIM" => Some((false, true)),
                _ if c.len() < 3 => Some((true, true)),
                _ => match c.literal_str(2) {
                    Some(mode) => Some(trim_mode(mode).map_err(|e| c.fail(e))?),
                    None => None,
                },
            };
            c.strict(String, move |a| {
                let chars = match a.get(1) {
                    Some(v) => text(v)?,
                    None => " ",
                };
                let (leading, trailing) = match fixed {
                    Some(mode) => mode,
                    None => trim_mode(text(&a[2])?)?,
                };
                let mut s = text(&a[0])?;
                if leading {
                    s = s.trim_start_matches(|ch| chars.contains(ch));
                }
                if trailing {
                    s = s.trim_end_matches(|ch| chars.contains(ch));
                }
                Ok(string_value(s))
            })
        }
        "CONCAT" => {
            c.arity(1, usize::MAX)?;
            c.strings(0)?;
            c.strict(String, |a| {
                let mut out = std::string::String::new();
                for v in a {
                    out.push_str(text(v)?);
                }
                Ok(string_value(out))
            })
        }
        "CONCAT_WS" => {
            c.arity(1, usize::MAX)?;
            c.strings(0)?;
            c.make(String, |a| {
                if a[0].is_null() {
                    return Ok(Value::Null);
                }
                let parts = a[1..]
                    .iter()
                    .filter(|v| !v.is_null())
                    .map(text)
                    .collect::<Result<Vec<&str>, _>>()?;
                Ok(string_value(parts.join(text(&a[0])?)))
            })
        }
        "SUBSTRING" | "SUBSTR" => {
            c.arity(2, 3)?;
            c.string(0)?;
            c.integer(1)?;
            c.integer(2)?;
            c.strict(String, |a| {
                let len = a.get(2).map(int).transpose()?;
                Ok(substring(text(&a[0])?, int(&a[1])?, len).map_or(Value::Null, string_value))
            })
        }
        "POSITION" | "LOCATE" | "INSTR" => {
            c.arity(2, if c.name == "LOCATE" { 3 } else { 2 })?;
            c.string(0)?;
            c.string(1)?;
            c.integer(2)?;
            let (needle, haystack) = if c.name == "INSTR" { (1, 0) } else { (0, 1) };
            c.strict(Int, move |a| {
                let from = a.get(2).map(int).transpose()?.unwrap_or(1);
                Ok(Value::Int(locate(
                    text(&a[needle])?,
                    text(&a[haystack])?,
                    from,
                )))
            })
        }
        "REPLACE" => {
            c.arity(3, 3)?;
            c.strings(0)?;
            c.strict(String, |a| {
                Ok(string_value(
                    text(&a[0])?.replace(text(&a[1])?, text(&a[2])?),
                ))
            })
        }
        "REGEXP_EXTRACT" => {
            c.arity(2, 3)?;
            c.string(0)?;
            c.string(1)?;
            c.integer(2)?;
            let regex = Compiled::new(c, 1, compile_regex)?;
            c.strict(String, move |a| {
                let (s, index) = (text(&a[0])?, a.get(2).map(int).transpose()?.unwrap_or(0));
                // As Flink: NULL when nothing matches, the group does not exist or the
                // (non-constant) regex is invalid.
                let group = regex.with(text(&a[1])?, |re| {
                    let index = usize::try_from(index).ok()?;
                    Some(re.captures(s)?.get(index)?.as_str().to_string())
                });
                Ok(group.ok().flatten().map_or(Value::Null, string_value))
            })
        }
        "REGEXP_REPLACE" => {
            c.arity(3, 3)?;
            c.strings(0)?;
            let regex = Compiled::new(c, 1, compile_regex)?;
            c.strict(String, move |a| {
                let (s, replacement) = (text(&a[0])?, text(&a[2])?);
                // The replacement is literal text, as Flink quotes it.
                let replaced = regex.with(text(&a[1])?, |re| {
                    re.replace_all(s, NoExpand(replacement)).into_owned()
                });
                Ok(replaced.map_or(Value::Null, string_value))
            })
        }
        "REGEXP" => {
            c.arity(2, 2)?;
            c.strings(0)?;
            let regex = Compiled::new(c, 1, compile_regex)?;
            c.strict(Boolean, move |a| {
                let s = text(&a[0])?;
                Ok(regex
                    .with(text(&a[1])?, |re| re.is_match(s))
                    .map_or(Value::Null, Value::Bool))
            })
        }
        "LPAD" | "RPAD" => {
            c.arity(3, 3)?;
            c.string(0)?;
            c.integer(1)?;
            c.string(2)?;
            let left = c.name == "LPAD";
            c.strict(String, move |a| {
                let padded = pad(text(&a[0])?, int(&a[1])?, text(&a[2])?, left)?;
                Ok(padded.map_or(Value::Null, string_value))
            })
        }
        "INITCAP" => {
            c.arity(1, 1)?;
            c.string(0)?;
            c.strict(String, |a| Ok(string_value(initcap(text(&a[0])?))))
        }
        "REVERSE" => {
            c.arity(1, 1)?;
            c.string(0)?;
            c.strict(String, |a| {
                Ok(string_value(
                    text(&a[0])?.chars().rev().collect::<std::string::String>(),
                ))
            })
        }
        "REPEAT" => {
            c.arity(2, 2)?;
            c.string(0)?;
            c.integer(1)?;
            c.strict(String, |a| {
                let (s, n) = (text(&a[0])?, usize::try_from(int(&a[1])?).unwrap_or(0));
                if s.len().saturating_mul(n) > MAX_STRING {
                    return Err(format!("REPEAT result exceeds {MAX_STRING} bytes"));
                }
                Ok(string_value(s.repeat(n)))
            })
        }
        "SPLIT_INDEX" => {
            c.arity(3, 3)?;
            c.string(0)?;
            c.string(1)?;
            c.integer(2)?;
            c.strict(String, |a| {
                let (s, sep) = (text(&a[0])?, text(&a[1])?);
                let Ok(index) = usize::try_from(int(&a[2])?) else {
                    return Ok(Value::Null);
                };
                let part = if s.is_empty() {
                    None
                } else if sep.is_empty() {
                    s.split(char::is_whitespace).nth(index)
                } else {
                    s.split(sep).nth(index)
                };
                Ok(part.map_or(Value::Null, string_value))
            })
        }
        "LEFT" | "RIGHT" => {
            c.arity(2, 2)?;
            c.string(0)?;
            c.integer(1)?;
            let left = c.name == "LEFT";
            c.strict(String, move |a| {
                let s = text(&a[0])?;
                let n = usize::try_from(int(&a[1])?).unwrap_or(0);
                let count = s.chars().count();
                let (from, to) = if left {
                    (0, n.min(count))
                } else {
                    (count.saturating_sub(n), count)
                };
                Ok(string_value(
                    s.chars()
                        .skip(from)
                        .take(to - from)
                        .collect::<std::string::String>(),
                ))
            })
        }
        "ASCII" => {
            c.arity(1, 1)?;
            c.string(0)?;
            c.strict(Int, |a| {
                Ok(Value::Int(
                    text(&a[0])?
                        .chars()
                        .next()
                        .map_or(0, |ch| i64::from(u32::from(ch))),
                ))
            })
        }
        "CHR" => {
            c.arity(1, 1)?;
            c.integer(0)?;
            c.strict(String, |a| {
                let n = int(&a[0])?;
                Ok(string_value(if n < 0 {
                    std::string::String::new()
                } else {
                    char::from((n & 0xFF) as u8).to_string()
                }))
            })
        }
        "TO_BASE64" => {
            c.arity(1, 1)?;
            c.expect(0, "STRING or BYTES", |t| {
                matches!(t, DataType::String | DataType::Bytes)
            })?;
            c.strict(String, |a| {
                Ok(string_value(base64_encode(match &a[0] {
                    Value::Bytes(b) => b,
                    v => text(v)?.as_bytes(),
                })))
            })
        }
        "FROM_BASE64" => {
            c.arity(1, 1)?;
            c.string(0)?;
            c.strict(String, |a| {
                let s = text(&a[0])?;
                let bytes = base64_decode(s).ok_or_else(|| format!("invalid base64 '{s}'"))?;
                Ok(string_value(std::string::String::from_utf8_lossy(&bytes)))
            })
        }
        _ => {
            // UUID
            c.arity(0, 0)?;
            c.make(String, |_| {
                Ok(string_value(uuid::Uuid::new_v4().to_string()))
            })
            .volatile()
        }
    })
}

/// (leading, trailing) of a TRIM mode.
fn trim_mode(mode: &str) -> Result<(bool, bool), String> {
    match mode.trim().to_ascii_uppercase().as_str() {
        "BOTH" => Ok((true, true)),
        "LEADING" => Ok((true, false)),
        "TRAILING" => Ok((false, true)),
        _ => Err(format!(
            "TRIM mode must be BOTH, LEADING or TRAILING, got '{mode}'"
        )),
    }
}

/// SUBSTRING as Flink: 1-based, a negative start counts from the end, a negative length is
/// NULL.
fn substring(s: &str, pos: i64, len: Option<i64>) -> Option<String> {
    if len.is_some_and(|l| l < 0) {
        return None;
    }
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len() as i64;
    let start = match pos {
        p if p > 0 => p - 1,
        p if p < 0 => n + p,
        _ => 0,
    };
    if start < 0 || start >= n {
        return Some(String::new());
    }
    let end = match len {
        Some(l) if n - start >= l => start + l,
        _ => n,
    };
    Some(chars[start as usize..end as usize].iter().collect())
}

/// The 1-based position of `needle` in `haystack` at or after position `from`, 0 if absent.
fn locate(needle: &str, haystack: &str, from: i64) -> i64 {
    let Some(skip) = from.checked_sub(1).and_then(|s| usize::try_from(s).ok()) else {
        return 0;
    };
    let Some(offset) = haystack
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(haystack.len()))
        .nth(skip)
    else {
        return 0;
    };
    match haystack[offset..].find(needle) {
        Some(i) => haystack[..offset + i].chars().count() as i64 + 1,
        None => 0,
    }
}

/// LPAD / RPAD as Flink: NULL for a negative length or an empty pad; a longer string is cut.
fn pad(s: &str, len: i64, with: &str, left: bool) -> Result<Option<String>, String> {
    let Ok(len) = usize::try_from(len) else {
        return Ok(None);
    };
    if with.is_empty() {
        return Ok(None);
    }
    if len > MAX_STRING {
        return Err(format!("padded length {len} exceeds {MAX_STRING}"));
    }
    let count = s.chars().count();
    if count >= len {
        return Ok(Some(s.chars().take(len).collect()));
    }
    let fill: String = with.chars().cycle().take(len - count).collect();
    Ok(Some(if left { fill + s } else { format!("{s}{fill}") }))
}

/// Upper-cases the first letter of each run of letters and digits, lower-cases the rest.
fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut word_start = true;
    for ch in s.chars() {
        if ch.is_alphanumeric() {
            if word_start {
                out.extend(ch.to_uppercase());
            } else {
                out.extend(ch.to_lowercase());
            }
            word_start = false;
        } else {
            out.push(ch);
            word_start = true;
        }
    }
    out
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64, padded or not; None when not base64.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in body.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

// ------------------------------------------------------------------------------------------
// Math functions
// ------------------------------------------------------------------------------------------

fn math_function(c: &Call<'_>) -> Result<Function, String> {
    use DataType::Double;
    Ok(match c.name {
        "ABS" => {
            c.arity(1, 1)?;
            c.numeric(0)?;
            c.strict(c.arg(0).clone(), |a| {
                Ok(match &a[0] {
                    Value::Int(i) => Value::Int(i.wrapping_abs()),
                    v => Value::Float(num(v)?.abs()),
                })
            })
        }
        "MOD" => {
            c.arity(2, 2)?;
            c.numeric(0)?;
            c.numeric(1)?;
            let (t0, t1) = (c.arg(0), c.arg(1));
            let integers = [t0, t1]
                .iter()
                .all(|t| t.is_integer() || **t == DataType::Null);
            // Of two integers, the divisor's type (the remainder is smaller than it).
            let ret = match (t0, t1) {
                _ if !integers => Double,
                (_, t) if t.is_integer() => t.clone(),
                (t, _) if t.is_integer() => t.clone(),
                _ => DataType::Int,
            };
            c.strict(ret, |a| match (&a[0], &a[1]) {
                (Value::Int(_), Value::Int(0)) => Err("division by zero".to_string()),
                (Value::Int(x), Value::Int(y)) => Ok(Value::Int(x.wrapping_rem(*y))),
                (x, y) => Ok(Value::Float(num(x)? % num(y)?)),
            })
        }
        "POWER" | "POW" | "ATAN2" => {
            c.arity(2, 2)?;
            c.numeric(0)?;
            c.numeric(1)?;
            let power = c.name != "ATAN2";
            c.strict(Double, move |a| {
                let (x, y) = (num(&a[0])?, num(&a[1])?);
                Ok(Value::Float(if power { x.powf(y) } else { x.atan2(y) }))
            })
        }
        "LOG2" => {
            c.arity(1, 1)?;
            c.numeric(0)?;
            c.strict(Double, |a| {
                let x = num(&a[0])?;
                if x <= 0.0 {
                    return Err(format!("x of LOG2(x) must be > 0, got {x}"));
                }
                Ok(Value::Float(x.log2()))
            })
        }
        "LOG" if c.len() == 2 => {
            c.numeric(0)?;
            c.numeric(1)?;
            c.strict(Double, |a| {
                let (base, x) = (num(&a[0])?, num(&a[1])?);
                if x <= 0.0 {
                    return Err(format!("x of LOG(base, x) must be > 0, got {x}"));
                }
                if base <= 1.0 {
                    return Err(format!("base of LOG(base, x) must be > 1, got {base}"));
                }
                Ok(Value::Float(x.ln() / base.ln()))
            })
        }
        "SQRT" | "LN" | "LOG" | "LOG10" | "EXP" | "SIN" | "COS" | "TAN" | "COT" | "ASIN"
        | "ACOS" | "ATAN" | "SINH" | "COSH" | "TANH" | "DEGREES" | "RADIANS" => {
            c.arity(1, if c.name == "LOG" { 2 } else { 1 })?;
            c.numeric(0)?;
            let f: fn(f64) -> f64 = match c.name {
                "SQRT" => f64::sqrt,
                "LN" | "LOG" => f64::ln,
                "LOG10" => f64::log10,
                "EXP" => f64::exp,
                "SIN" => f64::sin,
                "COS" => f64::cos,
                "TAN" => f64::tan,
                "COT" => |x: f64| 1.0 / x.tan(),
                "ASIN" => f64::asin,
                "ACOS" => f64::acos,
                "ATAN" => f64::atan,
                "SINH" => f64::sinh,
                "COSH" => f64::cosh,
                "TANH" => f64::tanh,
                "DEGREES" => f64::to_degrees,
                _ => f64::to_radians,
            };
            c.strict(Double, move |a| Ok(Value::Float(f(num(&a[0])?))))
        }
        "PI" | "E" => {
            c.arity(0, 0)?;
            let x = if c.name == "PI" {
                std::f64::consts::PI
            } else {
                std::f64::consts::E
            };
            c.make(Double, move |_| Ok(Value::Float(x)))
        }
        "FLOOR" | "CEIL" | "CEILING" => {
            c.arity(1, 2)?;
            let ceil = c.name != "FLOOR";
            if c.len() == 2 {
                return floor_time(c, ceil);
            }
            c.numeric(0)?;
            let ret = match c.arg(0) {
                DataType::Decimal(p, _) => DataType::Decimal(*p, 0),
                t => t.clone(),
            };
            c.strict(ret, move |a| {
                Ok(match &a[0] {
                    Value::Int(i) => Value::Int(*i),
                    v if ceil => Value::Float(num(v)?.ceil()),
                    v => Value::Float(num(v)?.floor()),
                })
            })
        }
        "ROUND" | "TRUNCATE" => {
            c.arity(1, 2)?;
            c.numeric(0)?;
            c.integer(1)?;
            let half_up = c.name == "ROUND";
            c.strict(c.arg(0).clone(), move |a| {
                let places = a.get(1).map(int).transpose()?.unwrap_or(0);
                match &a[0] {
                    Value::Int(i) => round_int(*i, places, half_up).map(Value::Int),
                    v => Ok(Value::Float(round_decimal(num(v)?, places, half_up))),
                }
            })
        }
        "SIGN" => {
            c.arity(1, 1)?;
            c.numeric(0)?;
            c.strict(c.arg(0).clone(), |a| {
                Ok(match &a[0] {
                    Value::Int(i) => Value::Int(i.signum()),
                    v => {
                        let x = num(v)?;
                        Value::Float(if x == 0.0 { 0.0 } else { x.signum() })
                    }
                })
            })
        }
        _ => {
            // GREATEST, LEAST: NULL if any argument is, as Flink.
            c.arity(1, usize::MAX)?;
            let ret = c.common_type(0)?;
            if matches!(ret, DataType::Row(_) | DataType::Map(..)) {
                return Err(c.fail(format!("cannot compare {ret}")));
            }
            let greatest = c.name == "GREATEST";
            let t = ret.clone();
            c.strict(ret, move |a| {
                let mut best = coerce(&a[0], &t);
                for v in &a[1..] {
                    let v = coerce(v, &t);
                    let order = v.total_cmp(&best);
                    if (greatest && order.is_gt()) || (!greatest && order.is_lt()) {
                        best = v;
                    }
                }
                Ok(best)
            })
        }
    })
}

/// ROUND (half away from zero) or TRUNCATE of an integer to `places` (negative: tens,
/// hundreds...).
fn round_int(x: i64, places: i64, half_up: bool) -> Result<i64, String> {
    if places >= 0 {
        return Ok(x);
    }
    if places < -38 {
        return Ok(0);
    }
    let unit = 10i128.pow(places.unsigned_abs() as u32);
    let x128 = i128::from(x);
    let mut q = x128 / unit;
    if half_up && (x128 % unit).abs() * 2 >= unit {
        q += x128.signum();
    }
    i64::try_from(q * unit).map_err(|_| format!("ROUND({x}, {places}) overflows BIGINT"))
}

/// ROUND (half away from zero) or TRUNCATE of a double to `places` decimal places, on its
/// shortest decimal representation as Java's `BigDecimal.valueOf(double)` (so ROUND(2.675, 2)
/// is 2.68, not the 2.67 binary rounding gives).
fn round_decimal(x: f64, places: i64, half_up: bool) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let places = places.clamp(-400, 400);
    let (digits, exp) = decimal_digits(&format!("{:e}", x.abs()));
    // Digit i is worth 10^(exp - i); those worth at least 10^-places stay.
    let keep = exp + places + 1;
    if keep >= digits.len() as i64 {
        return x;
    }
    let mut kept: Vec<u8> = match usize::try_from(keep) {
        Ok(k) => digits[..k].to_vec(),
        Err(_) => Vec::new(),
    };
    let round_up = half_up && usize::try_from(keep).is_ok_and(|k| digits[k] >= b'5');
    if round_up {
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, b'1');
                break;
            }
            i -= 1;
            if kept[i] == b'9' {
                kept[i] = b'0';
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    if kept.is_empty() {
        return 0.0;
    }
    let sign = if x < 0.0 { "-" } else { "" };
    let text = format!("{sign}{}e{}", String::from_utf8_lossy(&kept), -places);
    text.parse().unwrap_or(x)
}

/// The digits and exponent of Rust's `{:e}` text: "1.2345e3" → ("12345", 3).
fn decimal_digits(sci: &str) -> (Vec<u8>, i64) {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let digits = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    (digits, exp.parse().unwrap_or(0))
}

// ------------------------------------------------------------------------------------------
// Conditional functions
// ------------------------------------------------------------------------------------------

fn conditional_function(c: &Call<'_>) -> Result<Function, String> {
    Ok(match c.name {
        "COALESCE" | "IFNULL" => {
            if c.name == "COALESCE" {
                c.arity(1, usize::MAX)?;
            } else {
                c.arity(2, 2)?;
            }
            let ret = c.common_type(0)?;
            let t = ret.clone();
            c.make(ret, move |a| {
                Ok(a.iter()
                    .find(|v| !v.is_null())
                    .map_or(Value::Null, |v| coerce(v, &t)))
            })
        }
        "NULLIF" => {
            c.arity(2, 2)?;
            let common = c.common_type(0)?;
            c.make(c.arg(0).clone(), move |a| {
                let same = !a[1].is_null() && coerce(&a[0], &common) == coerce(&a[1], &common);
                Ok(if same { Value::Null } else { a[0].clone() })
            })
        }
        _ => {
            // IF(condition, then, else)
            c.arity(3, 3)?;
            c.expect(0, "BOOLEAN", |t| *t == DataType::Boolean)?;
            let ret = c.common_type(1)?;
            let t = ret.clone();
            c.make(ret, move |a| {
                Ok(coerce(if a[0].is_true() { &a[1] } else { &a[2] }, &t))
            })
        }
    })
}

// ------------------------------------------------------------------------------------------
// Time functions
// ------------------------------------------------------------------------------------------

/// A unit of EXTRACT, TIMESTAMPADD, TIMESTAMPDIFF and FLOOR/CEIL(... TO unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Nanosecond,
    Microsecond,
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
    Decade,
    Century,
    Millennium,
    Dow,
    IsoDow,
    Doy,
    IsoYear,
    Epoch,
}

const UNITS: [(&str, Unit); 19] = [
    ("NANOSECOND", Unit::Nanosecond),
    ("MICROSECOND", Unit::Microsecond),
    ("MILLISECOND", Unit::Millisecond),
    ("SECOND", Unit::Second),
    ("MINUTE", Unit::Minute),
    ("HOUR", Unit::Hour),
    ("DAY", Unit::Day),
    ("WEEK", Unit::Week),
    ("MONTH", Unit::Month),
    ("QUARTER", Unit::Quarter),
    ("YEAR", Unit::Year),
    ("DECADE", Unit::Decade),
    ("CENTURY", Unit::Century),
    ("MILLENNIUM", Unit::Millennium),
    ("DOW", Unit::Dow),
    ("ISODOW", Unit::IsoDow),
    ("DOY", Unit::Doy),
    ("ISOYEAR", Unit::IsoYear),
    ("EPOCH", Unit::Epoch),
];

/// The units TIMESTAMPADD, TIMESTAMPDIFF and FLOOR/CEIL take.
const STEP_UNITS: &[Unit] = &[
    Unit::Millisecond,
    Unit::Second,
    Unit::Minute,
    Unit::Hour,
    Unit::Day,
    Unit::Week,
    Unit::Month,
    Unit::Quarter,
    Unit::Year,
];

impl Unit {
    /// `text` (any case, `SQL_TSI_` prefix allowed) if it is one of `allowed`.
    fn parse(text: &str, allowed: &[Unit]) -> Result<Unit, String> {
        let upper = text.trim().to_ascii_uppercase();
        let name = upper.strip_prefix("SQL_TSI_").unwrap_or(&upper);
        UNITS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, u)| *u)
            .filter(|u| allowed.contains(u))
            .ok_or_else(|| format!("unsupported time unit '{text}'"))
    }

    fn name(self) -> &'static str {
        UNITS
            .iter()
            .find(|(_, u)| *u == self)
            .map_or("?", |(n, _)| n)
    }

    /// A fixed length in milliseconds (MILLISECOND to WEEK).
    fn fixed_ms(self) -> Option<i64> {
        Some(match self {
            Unit::Millisecond => 1,
            Unit::Second => SECOND_MS,
            Unit::Minute => MINUTE_MS,
            Unit::Hour => HOUR_MS,
            Unit::Day => DAY_MS,
            Unit::Week => 7 * DAY_MS,
            _ => return None,
        })
    }

    /// A whole number of months (MONTH, QUARTER, YEAR).
    fn months(self) -> Option<i64> {
        match self {
            Unit::Month => Some(1),
            Unit::Quarter => Some(3),
            Unit::Year => Some(12),
            _ => None,
        }
    }
}

/// A unit argument: parsed at resolution when a constant, else per row.
struct UnitArg {
    fixed: Option<Unit>,
    allowed: &'static [Unit],
}

impl UnitArg {
    fn new(c: &Call<'_>, i: usize, allowed: &'static [Unit]) -> Result<UnitArg, String> {
        c.string(i)?;
        let fixed = match c.literal_str(i) {
            Some(text) => Some(Unit::parse(text, allowed).map_err(|e| c.fail(e))?),
            None => None,
        };
        Ok(UnitArg { fixed, allowed })
    }

    fn get(&self, value: &Value) -> Result<Unit, String> {
        match self.fixed {
            Some(unit) => Ok(unit),
            None => Unit::parse(text(value)?, self.allowed),
        }
    }
}

/// Text read as a timestamp: with a format argument, or by default as SQL / ISO-8601 text
/// (`types::parse_timestamp`), then `default` (a Java pattern).
struct TimeParser {
    format: Option<Compiled<Pattern>>,
    default: Pattern,
}

impl TimeParser {
    /// The format is argument `i` if there is one.
    fn new(c: &Call<'_>, i: usize, default: &str) -> Result<TimeParser, String> {
        let format = if c.len() > i {
            Some(Compiled::new(c, i, compile_date_format)?)
        } else {
            None
        };
        Ok(TimeParser {
            format,
            default: compile_date_format(default).map_err(|e| c.fail(e))?,
        })
    }

    /// Milliseconds of `value` read with `format` (ignored without a format argument); None
    /// when it does not parse.
    fn parse(&self, value: &Value, format: Option<&Value>) -> Result<Option<i64>, String> {
        let s = text(value)?;
        match (&self.format, format) {
            (Some(compiled), Some(f)) => compiled.with(text(f)?, |p| p.parse_ms(s)),
            _ => Ok(parse_timestamp(s).or_else(|| self.default.parse_ms(s))),
        }
    }
}

/// The text of a pattern argument, formatting with it.
struct TimeFormatter {
    format: Option<Compiled<Pattern>>,
    default: Pattern,
}

impl TimeFormatter {
    fn new(c: &Call<'_>, i: usize) -> Result<TimeFormatter, String> {
        let format = if c.len() > i {
            Some(Compiled::new(c, i, compile_date_format)?)
        } else {
            None
        };
        Ok(TimeFormatter {
            format,
            default: compile_date_format(TIMESTAMP_FORMAT).map_err(|e| c.fail(e))?,
        })
    }

    fn format(&self, ms: i64, format: Option<&Value>) -> Result<Value, String> {
        let formatted = match (&self.format, format) {
            (Some(compiled), Some(f)) => compiled.with(text(f)?, |p| p.format(ms))?,
            _ => self.default.format(ms),
        };
        Ok(string_value(formatted))
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn date_value(ms: i64) -> Result<Value, String> {
    i32::try_from(ms.div_euclid(DAY_MS))
        .map(Value::Date)
        .map_err(|_| format!("{ms} ms is out of the DATE range"))
}

fn time_function(c: &Call<'_>) -> Result<Function, String> {
    use DataType::{BigInt, Date, Int, String, Timestamp, TimestampLtz};
    Ok(match c.name {
        "TO_TIMESTAMP" | "TO_DATE" => {
            c.arity(1, 2)?;
            c.strings(0)?;
            let date = c.name == "TO_DATE";
            let parser = TimeParser::new(c, 1, if date { "yyyy-MM-dd" } else { TIMESTAMP_FORMAT })?;
            c.strict(if date { Date } else { Timestamp(3) }, move |a| {
                Ok(match parser.parse(&a[0], a.get(1))? {
                    None => Value::Null,
                    Some(ms) if date => date_value(ms)?,
                    Some(ms) => Value::Timestamp(ms),
                })
            })
        }
        "TO_TIMESTAMP_LTZ" => {
            c.arity(1, 2)?;
            if *c.arg(0) == String {
                c.string(1)?;
                let parser = TimeParser::new(c, 1, TIMESTAMP_FORMAT)?;
                return Ok(c.strict(TimestampLtz(3), move |a| {
                    Ok(parser
                        .parse(&a[0], a.get(1))?
                        .map_or(Value::Null, Value::Timestamp))
                }));
            }
            c.numeric(0)?;
            c.integer(1)?;
            match c.literals.get(1) {
                Some(Some(Value::Int(p))) if *p != 0 && *p != 3 => {
                    return Err(c.fail(format!("precision must be 0 or 3, got {p}")));
                }
                _ => {}
            }
            c.strict(TimestampLtz(3), |a| {
                let precision = a.get(1).map(int).transpose()?.unwrap_or(3);
                let ms = match (&a[0], precision) {
                    (Value::Int(s), 0) => s.checked_mul(1000),
                    (Value::Int(ms), 3) => Some(*ms),
                    (v, 0) => Some((num(v)? * 1000.0) as i64),
                    (v, 3) => Some(num(v)? as i64),
                    (_, p) => return Err(format!("precision must be 0 or 3, got {p}")),
                };
                ms.map(Value::Timestamp)
                    .ok_or_else(|| format!("{} seconds is out of the TIMESTAMP range", a[0]))
            })
        }
        "DATE_FORMAT" => {
            c.arity(2, 2)?;
            c.expect(0, "a TIMESTAMP, DATE or STRING", |t| {
                is_datetime(t) || *t == String
            })?;
            c.string(1)?;
            let formatter = TimeFormatter::new(c, 1)?;
            c.strict(String, move |a| {
                let ms = match &a[0] {
                    Value::Str(s) => match parse_timestamp(s) {
                        Some(ms) => ms,
                        None => return Ok(Value::Null),
                    },
                    v => ms_of(v)?,
                };
                formatter.format(ms, a.get(1))
            })
        }
        "UNIX_TIMESTAMP" => {
            c.arity(0, 2)?;
            c.strings(0)?;
            if c.len() == 0 {
                return Ok(c
                    .make(BigInt, |_| Ok(Value::Int(now_ms().div_euclid(1000))))
                    .volatile());
            }
            let parser = TimeParser::new(c, 1, TIMESTAMP_FORMAT)?;
            // As Flink: Long.MIN_VALUE for text that does not parse.
            c.strict(BigInt, move |a| {
                let ms = parser.parse(&a[0], a.get(1))?;
                Ok(Value::Int(ms.map_or(i64::MIN, |ms| ms / 1000)))
            })
        }
        "FROM_UNIXTIME" => {
            c.arity(1, 2)?;
            c.numeric(0)?;
            c.string(1)?;
            let formatter = TimeFormatter::new(c, 1)?;
            c.strict(String, move |a| {
                let ms = match &a[0] {
                    Value::Int(s) => s.checked_mul(1000),
                    v => Some((num(v)? * 1000.0) as i64),
                }
                .ok_or_else(|| format!("{} seconds is out of the TIMESTAMP range", a[0]))?;
                formatter.format(ms, a.get(1))
            })
        }
        "YEAR" | "QUARTER" | "MONTH" | "WEEK" | "DAYOFYEAR" | "DAYOFMONTH" | "DAYOFWEEK"
        | "HOUR" | "MINUTE" | "SECOND" => {
            c.arity(1, 1)?;
            c.temporal(0)?;
            let unit = match c.name {
                "YEAR" => Unit::Year,
                "QUARTER" => Unit::Quarter,
                "MONTH" => Unit::Month,
                "WEEK" => Unit::Week,
                "DAYOFYEAR" => Unit::Doy,
                "DAYOFMONTH" => Unit::Day,
                "DAYOFWEEK" => Unit::Dow,
                "HOUR" => Unit::Hour,
                "MINUTE" => Unit::Minute,
                _ => Unit::Second,
            };
            c.strict(BigInt, move |a| {
                Ok(Value::Int(extract(unit, ms_of(&a[0])?)))
            })
        }
        "EXTRACT" => {
            c.arity(2, 2)?;
            let unit = UnitArg::new(c, 0, &ALL_UNITS)?;
            c.expect(1, "a TIMESTAMP, DATE or INTERVAL", |t| {
                is_datetime(t) || *t == DataType::Interval
            })?;
            c.strict(BigInt, move |a| {
                let unit = unit.get(&a[0])?;
                Ok(Value::Int(match &a[1] {
                    Value::Interval(ms) => extract_interval(unit, *ms).ok_or_else(|| {
                        format!("cannot extract {} from an interval", unit.name())
                    })?,
                    v => extract(unit, ms_of(v)?),
                }))
            })
        }
        "TIMESTAMPADD" => {
            c.arity(3, 3)?;
            let unit = UnitArg::new(c, 0, STEP_UNITS)?;
            c.integer(1)?;
            c.temporal(2)?;
            let whole_days = |u: Unit| u.months().is_some() || matches!(u, Unit::Day | Unit::Week);
            let ret = match (c.arg(2), unit.fixed) {
                (Date, Some(u)) if whole_days(u) => Date,
                (Date | DataType::Null, _) => Timestamp(3),
                (t, _) => t.clone(),
            };
            let to_date = ret == Date;
            c.strict(ret, move |a| {
                let ms = add_time(ms_of(&a[2])?, unit.get(&a[0])?, int(&a[1])?)?;
                if to_date {
                    date_value(ms)
                } else {
                    Ok(Value::Timestamp(ms))
                }
            })
        }
        "TIMESTAMPDIFF" => {
            c.arity(3, 3)?;
            let unit = UnitArg::new(c, 0, STEP_UNITS)?;
            c.temporal(1)?;
            c.temporal(2)?;
            c.strict(Int, move |a| {
                let unit = unit.get(&a[0])?;
                let (from, to) = (ms_of(&a[1])?, ms_of(&a[2])?);
                Ok(Value::Int(match (unit.fixed_ms(), unit.months()) {
                    (Some(step), _) => (i128::from(to) - i128::from(from)) as i64 / step,
                    (_, Some(months)) => months_between(from, to) / months,
                    _ => return Err(format!("unsupported time unit {}", unit.name())),
                }))
            })
        }
        "CURRENT_DATE" => {
            c.arity(0, 0)?;
            c.make(Date, |_| date_value(now_ms())).volatile()
        }
        _ => {
            // CURRENT_TIMESTAMP, NOW, PROCTIME, CURRENT_ROW_TIMESTAMP, LOCALTIMESTAMP
            c.arity(0, 0)?;
            let ret = if c.name == "LOCALTIMESTAMP" {
                Timestamp(3)
            } else {
                TimestampLtz(3)
            };
            c.make(ret, |_| Ok(Value::Timestamp(now_ms()))).volatile()
        }
    })
}

const ALL_UNITS: [Unit; 19] = {
    let mut all = [Unit::Epoch; 19];
    let mut i = 0;
    while i < UNITS.len() {
        all[i] = UNITS[i].1;
        i += 1;
    }
    all
};

/// FLOOR(t TO unit) / CEIL(t TO unit), passed as FLOOR(t, 'UNIT').
fn floor_time(c: &Call<'_>, ceil: bool) -> Result<Function, String> {
    c.temporal(0)?;
    let unit = UnitArg::new(c, 1, STEP_UNITS)?;
    let date = *c.arg(0) == DataType::Date;
    let ret = match c.arg(0) {
        DataType::Null => DataType::Timestamp(3),
        t => t.clone(),
    };
    Ok(c.strict(ret, move |a| {
        let ms = ms_of(&a[0])?;
        let unit = unit.get(&a[1])?;
        let (floor, next) = if unit == Unit::Week {
            // Weeks start on Sunday, as Flink's.
            let days = ms.div_euclid(DAY_MS);
            let start = (days - (days + 4).rem_euclid(7)) * DAY_MS;
            (start, start + 7 * DAY_MS)
        } else if let Some(step) = unit.fixed_ms() {
            let start = ms.div_euclid(step) * step;
            (start, start + step)
        } else if let Some(months) = unit.months() {
            let (y, m, _) = civil_from_days(ms.div_euclid(DAY_MS));
            let start = days_from_civil(y, (m - 1) / months * months + 1, 1) * DAY_MS;
            (start, add_months(start, months)?)
        } else {
            return Err(format!("unsupported time unit {}", unit.name()));
        };
        let result = if ceil && floor != ms { next } else { floor };
        if date {
            date_value(result)
        } else {
            Ok(Value::Timestamp(result))
        }
    }))
}

/// (ISO year, ISO week) of a day.
fn iso_week(days: i64) -> (i64, i64) {
    let monday_based = (days + 3).rem_euclid(7);
    let thursday = days - monday_based + 3;
    let (year, _, _) = civil_from_days(thursday);
    (year, (thursday - days_from_civil(year, 1, 1)) / 7 + 1)
}

/// EXTRACT(unit FROM t) of a timestamp or date in milliseconds, as Flink's.
fn extract(unit: Unit, ms: i64) -> i64 {
    let days = ms.div_euclid(DAY_MS);
    let in_day = ms.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    match unit {
        Unit::Nanosecond => in_day % 1000 * 1_000_000,
        Unit::Microsecond => in_day % 1000 * 1000,
        Unit::Millisecond => in_day % 1000,
        Unit::Second => in_day / SECOND_MS % 60,
        Unit::Minute => in_day / MINUTE_MS % 60,
        Unit::Hour => in_day / HOUR_MS,
        Unit::Day => d,
        Unit::Week => iso_week(days).1,
        Unit::Month => m,
        Unit::Quarter => (m + 2) / 3,
        Unit::Year => y,
        Unit::Decade => y.div_euclid(10),
        Unit::Century => (y + 99).div_euclid(100),
        Unit::Millennium => (y + 999).div_euclid(1000),
        // 1 = Sunday ... 7 = Saturday; ISODOW 1 = Monday ... 7 = Sunday.
        Unit::Dow => (days + 4).rem_euclid(7) + 1,
        Unit::IsoDow => (days + 3).rem_euclid(7) + 1,
        Unit::Doy => days - days_from_civil(y, 1, 1) + 1,
        Unit::IsoYear => iso_week(days).0,
        Unit::Epoch => ms / 1000,
    }
}

/// EXTRACT(unit FROM interval); None for calendar units.
fn extract_interval(unit: Unit, ms: i64) -> Option<i64> {
    Some(match unit {
        Unit::Day => ms / DAY_MS,
        Unit::Hour => ms % DAY_MS / HOUR_MS,
        Unit::Minute => ms % HOUR_MS / MINUTE_MS,
        Unit::Second => ms % MINUTE_MS / SECOND_MS,
        Unit::Millisecond => ms % SECOND_MS,
        Unit::Epoch => ms / SECOND_MS,
        _ => return None,
    })
}

/// `ms` plus `n` months, the day clamped to the month's last (Jan 31 + 1 month = Feb 28/29).
fn add_months(ms: i64, n: i64) -> Result<i64, String> {
    if n.unsigned_abs() > 12_000_000 {
        return Err(format!("adding {n} months overflows TIMESTAMP"));
    }
    let days = ms.div_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let total = y * 12 + m - 1 + n;
    let (ny, nm) = (total.div_euclid(12), total.rem_euclid(12) + 1);
    let month_days = days_from_civil(ny + nm / 12, nm % 12 + 1, 1) - days_from_civil(ny, nm, 1);
    Ok(days_from_civil(ny, nm, d.min(month_days)) * DAY_MS + ms.rem_euclid(DAY_MS))
}

/// TIMESTAMPADD.
fn add_time(ms: i64, unit: Unit, n: i64) -> Result<i64, String> {
    match (unit.fixed_ms(), unit.months()) {
        (Some(step), _) => n
            .checked_mul(step)
            .and_then(|delta| ms.checked_add(delta))
            .ok_or_else(|| format!("adding {n} {} overflows TIMESTAMP", unit.name())),
        (_, Some(months)) => add_months(ms, n.saturating_mul(months)),
        _ => Err(format!("unsupported time unit {}", unit.name())),
    }
}

/// Whole months from `from` to `to` (negative when `to` is earlier), as Flink's
/// TIMESTAMPDIFF counts them.
fn months_between(from: i64, to: i64) -> i64 {
    if to < from {
        return -months_between(to, from);
    }
    let (y0, m0, _) = civil_from_days(from.div_euclid(DAY_MS));
    let (y1, m1, _) = civil_from_days(to.div_euclid(DAY_MS));
    let months = (y1 * 12 + m1) - (y0 * 12 + m0);
    match add_months(from, months) {
        Ok(t) if t <= to => months,
        _ => months - 1,
    }
}

// ------------------------------------------------------------------------------------------
// JSON functions
// ------------------------------------------------------------------------------------------

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn json_function(c: &Call<'_>) -> Result<Function, String> {
    c.arity(2, 2)?;
    c.strings(0)?;
    let path = Compiled::new(c, 1, parse_json_path)?;
    let kind = c.name;
    let ret = if kind == "JSON_EXISTS" {
        DataType::Boolean
    } else {
        DataType::String
    };
    Ok(c.strict(ret, move |a| {
        let doc = text(&a[0])?;
        // A document or (non-constant) path that does not parse is NULL (JSON_EXISTS:
        // FALSE), as Flink's default NULL ON ERROR / FALSE ON ERROR.
        let root: Option<serde_json::Value> = serde_json::from_str(doc).ok();
        let found = path
            .with(text(&a[1])?, |steps| {
                root.as_ref()
                    .and_then(|root| steps.iter().try_fold(root, json_step))
                    .cloned()
            })
            .ok()
            .flatten();
        Ok(json_result(kind, found))
    }))
}

fn json_step<'a>(node: &'a serde_json::Value, step: &Step) -> Option<&'a serde_json::Value> {
    match step {
        Step::Key(key) => node.get(key.as_str()),
        Step::Index(i) => node.get(*i),
    }
}

fn json_result(kind: &str, found: Option<serde_json::Value>) -> Value {
    use serde_json::Value as J;
    match (kind, found) {
        ("JSON_EXISTS", found) => Value::Bool(found.is_some()),
        ("JSON_VALUE", Some(J::String(s))) => string_value(s),
        ("JSON_VALUE", Some(J::Number(n))) => string_value(n.to_string()),
        ("JSON_VALUE", Some(J::Bool(b))) => string_value(b.to_string()),
        ("JSON_QUERY", Some(v @ (J::Object(_) | J::Array(_)))) => {
            serde_json::to_string(&v).map_or(Value::Null, string_value)
        }
        _ => Value::Null,
    }
}

/// `[lax|strict] $` followed by `.name`, `."name"`, `['name']`, `["name"]` and `[index]`.
fn parse_json_path(path: &str) -> Result<Vec<Step>, String> {
    let bad = |why: &str| format!("invalid JSON path '{path}': {why}");
    let mut rest = path.trim();
    for mode in ["lax ", "strict "] {
        if rest
            .get(..mode.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(mode))
        {
            rest = rest[mode.len()..].trim_start();
        }
    }
    let mut chars = rest
        .strip_prefix('$')
        .ok_or_else(|| bad("it must start with $"))?
        .chars()
        .peekable();
    let mut steps = Vec::new();
    while let Some(ch) = chars.next() {
        match ch {
            '.' if chars.peek() == Some(&'"') => {
                chars.next();
                steps.push(Step::Key(
                    quoted(&mut chars, '"').ok_or_else(|| bad("unterminated quote"))?,
                ));
            }
            '.' => {
                let mut name = String::new();
                while let Some(&next) = chars.peek() {
                    if next == '.' || next == '[' {
                        break;
                    }
                    name.push(next);
                    chars.next();
                }
                match name.trim() {
                    "" => return Err(bad("a member name is missing")),
                    "*" => return Err(bad("wildcards are not supported")),
                    key => steps.push(Step::Key(key.to_string())),
                }
            }
            '[' => {
                while chars.next_if(|c| c.is_whitespace()).is_some() {}
                if let Some(quote) = chars.next_if(|c| *c == '\'' || *c == '"') {
                    let key = quoted(&mut chars, quote).ok_or_else(|| bad("unterminated quote"))?;
                    steps.push(Step::Key(key));
                } else {
                    let mut index = String::new();
                    while let Some(digit) = chars.next_if(|c| *c != ']' && !c.is_whitespace()) {
                        index.push(digit);
                    }
                    let index = index
                        .parse()
                        .map_err(|_| bad(&format!("'{index}' is not an array index")))?;
                    steps.push(Step::Index(index));
                }
                while chars.next_if(|c| c.is_whitespace()).is_some() {}
                if chars.next() != Some(']') {
                    return Err(bad("] expected"));
                }
            }
            c if c.is_whitespace() => {}
            c => return Err(bad(&format!("unexpected '{c}'"))),
        }
    }
    Ok(steps)
}

/// The text up to the closing `quote` (backslash escapes the next character).
fn quoted(chars: &mut Peekable<Chars<'_>>, quote: char) -> Option<String> {
    let mut out = String::new();
    loop {
        match chars.next()? {
            '\\' => out.push(chars.next()?),
            c if c == quote => return Some(out),
            c => out.push(c),
        }
    }
}

// ------------------------------------------------------------------------------------------
// CAST
// ------------------------------------------------------------------------------------------

/// The type of CAST's result (always `to`): checks the conversion is allowed between the
/// types, Err "cannot cast BOOLEAN to TIMESTAMP(3)" otherwise.
pub fn check_cast(from: &DataType, to: &DataType) -> Result<(), String> {
    use DataType as T;
    let ok = match (from, to) {
        (T::Null, _) | (_, T::String) => true,
        (T::Timestamp(_), T::Timestamp(_)) | (T::TimestampLtz(_), T::TimestampLtz(_)) => true,
        (T::Decimal(..), T::Decimal(..)) => true,
        (f, t) if f == t => true,
        (T::String, t) => {
            t.is_numeric() || matches!(t, T::Boolean | T::Bytes | T::Date) || t.is_timestamp()
        }
        (f, t) if f.is_numeric() && t.is_numeric() => true,
        (T::Boolean, t) if t.is_numeric() => true,
        (f, T::Boolean) if f.is_integer() => true,
        (f, t) if f.is_numeric() && t.is_timestamp() => {
            return Err(format!(
                "cannot cast {from} to {to}: use TO_TIMESTAMP_LTZ(value, 0) for epoch seconds \
                 or TO_TIMESTAMP_LTZ(value, 3) for epoch milliseconds"
            ));
        }
        (f, t) if f.is_timestamp() && t.is_numeric() => {
            return Err(format!(
                "cannot cast {from} to {to}: use UNIX_TIMESTAMP(CAST(value AS STRING)) for \
                 epoch seconds"
            ));
        }
        (f, t) if is_datetime(f) && is_datetime(t) => true,
        (T::Array(a), T::Array(b)) => check_cast(a, b).is_ok(),
        (T::Map(k1, v1), T::Map(k2, v2)) => {
            check_cast(k1, k2).is_ok() && check_cast(v1, v2).is_ok()
        }
        (T::Row(a), T::Row(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| check_cast(&x.data_type, &y.data_type).is_ok())
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("cannot cast {from} to {to}"))
    }
}

/// CAST(value AS to) with Flink's semantics; Err on a value that does not convert (TRY_CAST
/// turns that into NULL, the caller does it).
pub fn cast(value: &Value, to: &DataType) -> Result<Value, String> {
    use DataType as T;
    let fail = || {
        let shown = match value {
            Value::Str(s) => format!("'{s}'"),
            other => cast_text(other),
        };
        format!("cannot cast {shown} to {to}")
    };
    Ok(match (value, to) {
        (Value::Null, _) => Value::Null,
        (v, T::String) => string_value(cast_text(v)),
        (v, T::Boolean) => match v {
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Bool(*i != 0),
            Value::Str(s) => Value::Bool(parse_bool(s).ok_or_else(fail)?),
            _ => return Err(fail()),
        },
        (v, t) if t.is_integer() => Value::Int(match v {
            Value::Int(i) => narrow(*i, t),
            Value::Float(x) if *t == T::BigInt => *x as i64,
            // Java: (int) of a double saturates, narrower types then wrap.
            Value::Float(x) => narrow(i64::from(*x as i32), t),
            Value::Bool(b) => i64::from(*b),
            Value::Str(s) => parse_integer(s, t).ok_or_else(fail)?,
            _ => return Err(fail()),
        }),
        (v, T::Float | T::Double | T::Decimal(..)) => {
            let x = match v {
                Value::Int(i) => *i as f64,
                Value::Float(x) => *x,
                Value::Bool(b) => f64::from(u8::from(*b)),
                Value::Str(s) => s.trim().parse::<f64>().map_err(|_| fail())?,
                _ => return Err(fail()),
            };
            Value::Float(match to {
                T::Float => f64::from(x as f32),
                T::Decimal(p, s) => {
                    let rounded = round_decimal(x, i64::from(*s), true);
                    let limit = 10f64.powi(i32::from(p.saturating_sub(*s)));
                    if !rounded.is_finite() || rounded.abs() >= limit {
                        return Err(fail());
                    }
                    rounded
                }
                _ => x,
            })
        }
        (v, T::Timestamp(_) | T::TimestampLtz(_)) => match v {
            Value::Timestamp(ms) => Value::Timestamp(*ms),
            Value::Date(d) => Value::Timestamp(i64::from(*d) * DAY_MS),
            Value::Str(s) => Value::Timestamp(parse_timestamp(s).ok_or_else(fail)?),
            _ => return Err(fail()),
        },
        (v, T::Date) => match v {
            Value::Date(d) => Value::Date(*d),
            Value::Timestamp(ms) => date_value(*ms)?,
            Value::Str(s) => Value::Date(parse_date(s).ok_or_else(fail)?),
            _ => return Err(fail()),
        },
        (Value::Bytes(b), T::Bytes) => Value::Bytes(b.clone()),
        (Value::Str(s), T::Bytes) => Value::Bytes(Arc::from(s.as_bytes())),
        (Value::Interval(ms), T::Interval) => Value::Interval(*ms),
        (Value::Array(items), T::Array(t)) => Value::Array(
            items
                .iter()
                .map(|v| cast(v, t))
                .collect::<Result<Vec<_>, _>>()?
                .into(),
        ),
        (Value::Map(entries), T::Map(k, v)) => Value::Map(
            entries
                .iter()
                .map(|(key, value)| Ok((cast(key, k)?, cast(value, v)?)))
                .collect::<Result<Vec<_>, String>>()?
                .into(),
        ),
        (Value::Row(values), T::Row(fields)) if values.len() == fields.len() => Value::Row(
            values
                .iter()
                .zip(fields)
                .map(|(v, f)| cast(v, &f.data_type))
                .collect::<Result<Vec<_>, _>>()?
                .into(),
        ),
        _ => return Err(fail()),
    })
}

/// Java's narrowing of a long to the integer type `t` (wraps).
fn narrow(i: i64, t: &DataType) -> i64 {
    match t {
        DataType::TinyInt => i64::from(i as i8),
        DataType::SmallInt => i64::from(i as i16),
        DataType::Int => i64::from(i as i32),
        _ => i,
    }
}

/// Text as an integer of type `t`, as Flink reads it: trimmed, a fraction truncated, Err
/// out of the type's range.
fn parse_integer(s: &str, t: &DataType) -> Option<i64> {
    let s = s.trim();
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    let digits = whole.strip_prefix(['+', '-']).unwrap_or(whole);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let i: i64 = whole.parse().ok()?;
    (narrow(i, t) == i).then_some(i)
}

/// Flink's strings for BOOLEAN.
fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// A value as CAST(... AS STRING) writes it: doubles as Java (`1.0`, `1.0E10`), booleans
/// `TRUE`/`FALSE`, timestamps `yyyy-MM-dd HH:mm:ss.SSS`, bytes as UTF-8.
fn cast_text(value: &Value) -> String {
    let join = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(", ");
    match value {
        Value::Float(x) => java_double_text(*x),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Row(values) => format!("({})", join(&mut values.iter().map(cast_text))),
        Value::Array(values) => format!("[{}]", join(&mut values.iter().map(cast_text))),
        Value::Map(entries) => format!(
            "{{{}}}",
            join(
                &mut entries
                    .iter()
                    .map(|(k, v)| format!("{}={}", cast_text(k), cast_text(v)))
            )
        ),
        other => other.to_string(),
    }
}

/// Java's `Double.toString`. A double that is exactly a FLOAT and reads shorter as one is
/// written as Java's `Float.toString` would (a FLOAT column's 1.1 is 1.1, not
/// 1.100000023841858): CAST does not know the source type, and a DOUBLE that happens to hold
/// such a value is rare.
fn java_double_text(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let wide = format!("{:e}", x.abs());
    let narrow = x as f32;
    let sci = if f64::from(narrow) == x {
        let short = format!("{:e}", narrow.abs());
        if short.len() < wide.len() {
            short
        } else {
            wide
        }
    } else {
        wide
    };
    let (digits, exp) = decimal_digits(&sci);
    let digits = String::from_utf8_lossy(&digits).into_owned();
    let sign = if x < 0.0 { "-" } else { "" };
    if (0..7).contains(&exp) {
        let whole = exp as usize + 1;
        if digits.len() > whole {
            format!("{sign}{}.{}", &digits[..whole], &digits[whole..])
        } else {
            format!("{sign}{digits:0<whole$}.0")
        }
    } else if (-3..0).contains(&exp) {
        format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{sign}{first}.{rest}E{exp}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Field;

    /// Test arguments written as SQL literals: `'text'`, `1`, `2.5`, `NULL`, `TRUE`,
    /// `TIMESTAMP '...'`, `DATE '...'`, `INTERVAL <ms>`, separated by commas.
    fn parse_args(args: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut token = String::new();
        let mut quoted = false;
        for ch in args.chars().chain(std::iter::once(',')) {
            if ch == '\'' {
                quoted = !quoted;
            }
            if ch == ',' && !quoted {
                if !token.trim().is_empty() {
                    out.push(literal(token.trim()));
                }
                token.clear();
            } else {
                token.push(ch);
            }
        }
        out
    }

    fn literal(token: &str) -> Value {
        let unquote = |s: &str| s.trim()[1..s.trim().len() - 1].replace("''", "'");
        if let Some(rest) = token.strip_prefix("TIMESTAMP ") {
            Value::Timestamp(parse_timestamp(&unquote(rest)).expect("a timestamp literal"))
        } else if let Some(rest) = token.strip_prefix("DATE ") {
            Value::Date(parse_date(&unquote(rest)).expect("a date literal"))
        } else if let Some(rest) = token.strip_prefix("INTERVAL ") {
            Value::Interval(rest.parse().expect("interval milliseconds"))
        } else if token.starts_with('\'') {
            string_value(unquote(token))
        } else if token == "NULL" {
            Value::Null
        } else if token == "TRUE" || token == "FALSE" {
            Value::Bool(token == "TRUE")
        } else if token.contains(['.', 'e']) {
            Value::Float(token.parse().expect("a double literal"))
        } else {
            Value::Int(token.parse().expect("an integer literal"))
        }
    }

    fn type_of(value: &Value) -> DataType {
        match value {
            Value::Int(_) => DataType::Int,
            Value::Float(_) => DataType::Double,
            Value::Str(_) => DataType::String,
            Value::Bool(_) => DataType::Boolean,
            Value::Timestamp(_) => DataType::Timestamp(3),
            Value::Date(_) => DataType::Date,
            Value::Interval(_) => DataType::Interval,
            Value::Bytes(_) => DataType::Bytes,
            _ => DataType::Null,
        }
    }

    /// "TYPE value" of a call, or "error: ...".
    fn run(name: &str, types: &[DataType], literals: &[Option<Value>], args: &[Value]) -> String {
        match resolve(name, types, literals)
            .and_then(|f| Ok((f.return_type.clone(), f.call(args)?)))
        {
            Ok((t, v)) => format!("{t} {v}"),
            Err(e) => format!("error: {e}"),
        }
    }

    /// A call with its arguments as constants and again as columns: both must agree.
    fn show(name: &str, args: &str) -> String {
        let values = parse_args(args);
        let types: Vec<DataType> = values.iter().map(type_of).collect();
        let constants: Vec<Option<Value>> = values.iter().cloned().map(Some).collect();
        let with = run(name, &types, &constants, &values);
        // Time units are keywords: always constants.
        let unit_first = ["EXTRACT", "TIMESTAMPADD", "TIMESTAMPDIFF"].contains(&name);
        let columns: Vec<Option<Value>> = (0..values.len())
            .map(|i| constants[i].clone().filter(|_| unit_first && i == 0))
            .collect();
        let without = run(name, &types, &columns, &values);
        assert_eq!(
            with, without,
            "{name}({args}) differs when its arguments are columns"
        );
        with
    }

    /// Checks rows `NAME(args) = TYPE value` (or `= error: message`).
    fn check<S: AsRef<str>>(rows: &[S]) {
        let failures: Vec<String> = rows
            .iter()
            .filter_map(|row| {
                let row = row.as_ref();
                let (call, want) = row.rsplit_once(") = ").expect("NAME(args) = want");
                let (name, args) = call.split_once('(').expect("NAME(args)");
                let got = show(name, args);
                (got != want).then(|| format!("{call}) = {got:?}, want {want:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn string_functions() {
        check(&[
            "CHAR_LENGTH('héllo') = INT 5",
            "character_length(NULL) = INT NULL",
            "UPPER('abc') = STRING ABC",
            "LOWER('ÀBC') = STRING àbc",
            "TRIM('  ab  ') = STRING ab",
            "LTRIM('  ab  ') = STRING ab  ",
            "RTRIM('abxx', 'x') = STRING ab",
            "TRIM('xyabyx', 'xy') = STRING ab",
            "TRIM('xxabxx', 'x', 'LEADING') = STRING abxx",
            "TRIM('xxabxx', 'x', 'trailing') = STRING xxab",
            "CONCAT('a', 'b', 'c') = STRING abc",
            "CONCAT('a', NULL) = STRING NULL",
            "CONCAT_WS('~', 'AA', 'BB', '', 'CC') = STRING AA~BB~~CC",
            "CONCAT_WS('-', 'a', NULL, 'b') = STRING a-b",
            "CONCAT_WS(NULL, 'a') = STRING NULL",
            "SUBSTRING('hello', 2, 3) = STRING ell",
            "SUBSTRING('hello', 2) = STRING ello",
            "SUBSTR('hello', -3, 2) = STRING ll",
            "SUBSTRING('hello', 0, 2) = STRING he",
            "SUBSTRING('hello', 9) = STRING ",
            "SUBSTRING('hello', 1, -1) = STRING NULL",
            "SUBSTRING('héllo', 2, 100) = STRING éllo",
            "POSITION('l', 'hello') = INT 3",
            "POSITION('z', 'hello') = INT 0",
            "LOCATE('l', 'héllo', 4) = INT 4",
            "LOCATE('l', 'hello') = INT 3",
            "LOCATE('l', 'hello', 9) = INT 0",
            "INSTR('hello', 'll') = INT 3",
            "REPLACE('hello world', 'o', '0') = STRING hell0 w0rld",
            "REGEXP_EXTRACT('foothebar', 'foo(.*?)(bar)', 2) = STRING bar",
            "REGEXP_EXTRACT('foothebar', 'foo(.*?)(bar)') = STRING foothebar",
            "REGEXP_EXTRACT('abc', 'x(.)') = STRING NULL",
            "REGEXP_EXTRACT('abc', 'a(.)', 5) = STRING NULL",
            "REGEXP_REPLACE('foobar', 'oo|ar', '$1') = STRING f$1b$1",
            "REGEXP('abc123', '[0-9]+') = BOOLEAN TRUE",
            "REGEXP('abc', '^b') = BOOLEAN FALSE",
            "LPAD('hi', 4, '??') = STRING ??hi",
            "LPAD('hi', 1, '??') = STRING h",
            "RPAD('hi', 5, 'ab') = STRING hiaba",
            "LPAD('hi', -1, 'x') = STRING NULL",
            "RPAD('hi', 3, '') = STRING NULL",
            "INITCAP('hello wORLD-foo 2nd') = STRING Hello World-Foo 2nd",
            "REVERSE('abc') = STRING cba",
            "REPEAT('ab', 3) = STRING ababab",
            "REPEAT('ab', -1) = STRING ",
            "SPLIT_INDEX('a,b,,c', ',', 3) = STRING c",
            "SPLIT_INDEX('a,b,,c', ',', 4) = STRING NULL",
            "SPLIT_INDEX('a,b', ',', -1) = STRING NULL",
            "LEFT('hello', 2) = STRING he",
            "RIGHT('hello', 2) = STRING lo",
            "RIGHT('hello', 9) = STRING hello",
            "LEFT('hello', -1) = STRING ",
            "ASCII('A') = INT 65",
            "ASCII('') = INT 0",
            "CHR(65) = STRING A",
            "CHR(321) = STRING A",
            "TO_BASE64('hello') = STRING aGVsbG8=",
            "TO_BASE64('hi') = STRING aGk=",
            "FROM_BASE64('aGVsbG8=') = STRING hello",
            "FROM_BASE64('aGk') = STRING hi",
            "FROM_BASE64('a') = error: invalid base64 'a'",
        ]);
        let uuid = resolve("UUID", &[], &[]).expect("resolves");
        assert!(!uuid.is_deterministic());
        let text = uuid.call(&[]).expect("calls").to_string();
        assert_eq!((text.len(), text.as_bytes()[14]), (36, b'4'));
    }

    #[test]
    fn math_functions() {
        check(&[
            "ABS(-3) = INT 3",
            "ABS(-2.5) = DOUBLE 2.5",
            "MOD(7, 3) = INT 1",
            "MOD(-7, 3) = INT -1",
            "MOD(7.5, 2) = DOUBLE 1.5",
            "MOD(7, 0) = error: division by zero",
            "POWER(2, 10) = DOUBLE 1024",
            "POW(4, 0.5) = DOUBLE 2",
            "SQRT(16) = DOUBLE 4",
            "LN(1) = DOUBLE 0",
            "LOG10(1000) = DOUBLE 3",
            "LOG2(8) = DOUBLE 3",
            "LOG2(0) = error: x of LOG2(x) must be > 0, got 0",
            "LOG(2, 8) = DOUBLE 3",
            "LOG(1) = DOUBLE 0",
            "EXP(0) = DOUBLE 1",
            "FLOOR(2.7) = DOUBLE 2",
            "FLOOR(-2.5) = DOUBLE -3",
            "CEIL(2.1) = DOUBLE 3",
            "CEILING(5) = INT 5",
            "ROUND(2.675, 2) = DOUBLE 2.68",
            "ROUND(-2.5) = DOUBLE -3",
            "ROUND(0.5) = DOUBLE 1",
            "ROUND(9.96, 1) = DOUBLE 10",
            "ROUND(1.23456, 3) = DOUBLE 1.235",
            "ROUND(1234.5, -2) = DOUBLE 1200",
            "ROUND(15, -1) = INT 20",
            "ROUND(-15, -1) = INT -20",
            "ROUND(14, -1) = INT 10",
            "TRUNCATE(2.675, 2) = DOUBLE 2.67",
            "TRUNCATE(-2.7) = DOUBLE -2",
            "TRUNCATE(199, -2) = INT 100",
            "SIGN(-5) = INT -1",
            "SIGN(0.0) = DOUBLE 0",
            "PI() = DOUBLE 3.141592653589793",
            "DEGREES(0) = DOUBLE 0",
            "ATAN2(0, 1) = DOUBLE 0",
            "GREATEST(1, 2.5, 2) = DOUBLE 2.5",
            "LEAST('b', 'a') = STRING a",
            "GREATEST(1, NULL) = INT NULL",
            "GREATEST(DATE '2024-01-02', TIMESTAMP '2024-01-01 10:00:00') = TIMESTAMP(3) 2024-01-02 00:00:00.000",
        ]);
    }

    #[test]
    fn conditional_functions() {
        check(&[
            "COALESCE(NULL, 1, 2.5) = DOUBLE 1",
            "COALESCE(NULL, 'a') = STRING a",
            "COALESCE(NULL) = NULL NULL",
            "IFNULL(NULL, 3) = INT 3",
            "IFNULL(4, 3) = INT 4",
            "NULLIF(1, 1) = INT NULL",
            "NULLIF(1, 2) = INT 1",
            "NULLIF(1, NULL) = INT 1",
            "IF(TRUE, 1, 2) = INT 1",
            "IF(NULL, 1, 2) = INT 2",
            "IF(FALSE, 'a', NULL) = STRING NULL",
            "IF(TRUE, 1, 2.5) = DOUBLE 1",
        ]);
    }

    #[test]
    fn time_functions() {
        let parts = [
            ("YEAR", "2024"),
            ("QUARTER", "1"),
            ("MONTH", "2"),
            ("WEEK", "9"),
            ("DAYOFYEAR", "60"),
            ("DAYOFMONTH", "29"),
            ("DAYOFWEEK", "5"),
            ("HOUR", "13"),
            ("MINUTE", "45"),
            ("SECOND", "30"),
        ];
        let rows: Vec<String> = parts
            .iter()
            .map(|(name, want)| {
                format!("{name}(TIMESTAMP '2024-02-29 13:45:30.123') = BIGINT {want}")
            })
            .collect();
        check(&rows);
        check(&[
            "WEEK(DATE '2021-01-01') = BIGINT 53",
            "HOUR(DATE '2021-01-01') = BIGINT 0",
            "DAYOFWEEK(DATE '2024-03-03') = BIGINT 1",
            "EXTRACT('YEAR', TIMESTAMP '2024-02-29 13:45:30.123') = BIGINT 2024",
            "EXTRACT('DOW', TIMESTAMP '2024-02-29 13:45:30.123') = BIGINT 5",
            "EXTRACT('doy', TIMESTAMP '2024-02-29 13:45:30.123') = BIGINT 60",
            "EXTRACT('MILLISECOND', TIMESTAMP '2024-02-29 13:45:30.123') = BIGINT 123",
            "EXTRACT('EPOCH', TIMESTAMP '2024-02-29 13:45:30.123') = BIGINT 1709214330",
            "EXTRACT('DAY', DATE '2006-06-05') = BIGINT 5",
            "EXTRACT('HOUR', INTERVAL 90000000) = BIGINT 1",
            "EXTRACT('DAY', INTERVAL 90000000) = BIGINT 1",
            "DATE_FORMAT(TIMESTAMP '2024-02-29 13:45:30', 'yyyy/MM/dd HH:mm') = STRING 2024/02/29 13:45",
            "DATE_FORMAT('2024-02-29 13:45:30', 'EEE d MMM yyyy') = STRING Thu 29 Feb 2024",
            "DATE_FORMAT('nonsense', 'yyyy') = STRING NULL",
            "TO_TIMESTAMP('2024-02-29 13:45:30') = TIMESTAMP(3) 2024-02-29 13:45:30.000",
            "TO_TIMESTAMP('2024-02-29T13:45:30.5Z') = TIMESTAMP(3) 2024-02-29 13:45:30.500",
            "TO_TIMESTAMP('2024-2-9 3:04:05') = TIMESTAMP(3) 2024-02-09 03:04:05.000",
            "TO_TIMESTAMP('29/02/2024', 'dd/MM/yyyy') = TIMESTAMP(3) 2024-02-29 00:00:00.000",
            "TO_TIMESTAMP('garbage') = TIMESTAMP(3) NULL",
            "TO_TIMESTAMP_LTZ(1709214330, 0) = TIMESTAMP_LTZ(3) 2024-02-29 13:45:30.000",
            "TO_TIMESTAMP_LTZ(1709214330123, 3) = TIMESTAMP_LTZ(3) 2024-02-29 13:45:30.123",
            "TO_TIMESTAMP_LTZ(1709214330123) = TIMESTAMP_LTZ(3) 2024-02-29 13:45:30.123",
            "TO_TIMESTAMP_LTZ(1709214330.5, 0) = TIMESTAMP_LTZ(3) 2024-02-29 13:45:30.500",
            "TO_TIMESTAMP_LTZ('2024-02-29 13:45:30') = TIMESTAMP_LTZ(3) 2024-02-29 13:45:30.000",
            "TO_DATE('2024-02-29') = DATE 2024-02-29",
            "TO_DATE('20240229', 'yyyyMMdd') = DATE 2024-02-29",
            "TO_DATE('nope') = DATE NULL",
            "UNIX_TIMESTAMP('2024-02-29 13:45:30') = BIGINT 1709214330",
            "UNIX_TIMESTAMP('29.02.2024', 'dd.MM.yyyy') = BIGINT 1709164800",
            "UNIX_TIMESTAMP('x') = BIGINT -9223372036854775808",
            "FROM_UNIXTIME(1709214330) = STRING 2024-02-29 13:45:30",
            "FROM_UNIXTIME(0, 'yyyy') = STRING 1970",
            "TIMESTAMPADD('MONTH', 1, TIMESTAMP '2024-01-31 10:00:00') = TIMESTAMP(3) 2024-02-29 10:00:00.000",
            "TIMESTAMPADD('YEAR', -1, TIMESTAMP '2024-02-29 10:00:00') = TIMESTAMP(3) 2023-02-28 10:00:00.000",
            "TIMESTAMPADD('DAY', 1, DATE '2024-02-28') = DATE 2024-02-29",
            "TIMESTAMPADD('SQL_TSI_WEEK', 1, DATE '2024-02-28') = DATE 2024-03-06",
            "TIMESTAMPADD('MINUTE', 90, TIMESTAMP '2024-02-28 23:00:00') = TIMESTAMP(3) 2024-02-29 00:30:00.000",
            "TIMESTAMPDIFF('DAY', TIMESTAMP '2003-01-02 10:00:00', TIMESTAMP '2003-01-03 10:00:00') = INT 1",
            "TIMESTAMPDIFF('HOUR', TIMESTAMP '2003-01-03 10:00:00', TIMESTAMP '2003-01-02 10:30:00') = INT -23",
            "TIMESTAMPDIFF('MONTH', TIMESTAMP '2024-01-31 00:00:00', TIMESTAMP '2024-02-29 00:00:00') = INT 1",
            "TIMESTAMPDIFF('MONTH', TIMESTAMP '2024-01-31 12:00:00', TIMESTAMP '2024-02-29 11:00:00') = INT 0",
            "TIMESTAMPDIFF('MONTH', TIMESTAMP '2024-03-15 00:00:00', TIMESTAMP '2024-01-16 00:00:00') = INT -1",
            "TIMESTAMPDIFF('YEAR', DATE '2020-02-29', DATE '2021-02-28') = INT 1",
            "TIMESTAMPDIFF('QUARTER', DATE '2020-01-01', DATE '2020-12-31') = INT 3",
            "FLOOR(TIMESTAMP '2024-02-29 13:45:30', 'HOUR') = TIMESTAMP(3) 2024-02-29 13:00:00.000",
            "CEIL(TIMESTAMP '2024-02-29 13:45:30', 'DAY') = TIMESTAMP(3) 2024-03-01 00:00:00.000",
            "FLOOR(TIMESTAMP '2024-02-29 13:45:30', 'WEEK') = TIMESTAMP(3) 2024-02-25 00:00:00.000",
            "FLOOR(DATE '2024-02-29', 'QUARTER') = DATE 2024-01-01",
            "CEIL(DATE '2024-02-29', 'MONTH') = DATE 2024-03-01",
            "CEIL(DATE '2024-03-01', 'YEAR') = DATE 2025-01-01",
            "CEIL(DATE '2024-01-01', 'YEAR') = DATE 2024-01-01",
        ]);
        for (name, t) in [
            ("NOW", DataType::TimestampLtz(3)),
            ("current_timestamp", DataType::TimestampLtz(3)),
            ("LOCALTIMESTAMP", DataType::Timestamp(3)),
            ("PROCTIME", DataType::TimestampLtz(3)),
            ("CURRENT_DATE", DataType::Date),
            ("UNIX_TIMESTAMP", DataType::BigInt),
        ] {
            let f = resolve(name, &[], &[]).expect("resolves");
            assert_eq!(f.return_type, t, "{name}");
            assert!(!f.is_deterministic(), "{name}");
            let v = f.call(&[]).expect("calls");
            let after_2024 = match v {
                Value::Timestamp(ms) => ms > 1_704_067_200_000,
                Value::Date(d) => d > 19_723,
                Value::Int(s) => s > 1_704_067_200,
                _ => false,
            };
            assert!(after_2024, "{name} = {v}");
        }
    }

    #[test]
    fn json_functions() {
        let doc = r#"'{"a": {"b": [1, "x", true, null]}, "c.d": 2}'"#;
        let rows: Vec<String> = [
            ("JSON_VALUE", "'$.a.b[1]'", "STRING x"),
            ("JSON_VALUE", "'$.a.b[0]'", "STRING 1"),
            ("JSON_VALUE", "'$.a.b[2]'", "STRING true"),
            ("JSON_VALUE", "'$.a.b[3]'", "STRING NULL"),
            ("JSON_VALUE", "'$.a'", "STRING NULL"),
            ("JSON_VALUE", "'$.missing'", "STRING NULL"),
            ("JSON_VALUE", r#"'lax $[''a'']["b"][ 0 ]'"#, "STRING 1"),
            ("JSON_VALUE", r#"'$."c.d"'"#, "STRING 2"),
            ("JSON_QUERY", "'$.a'", r#"STRING {"b":[1,"x",true,null]}"#),
            ("JSON_QUERY", "'$.a.b[0]'", "STRING NULL"),
            ("JSON_EXISTS", "'$.a.b[3]'", "BOOLEAN TRUE"),
            ("JSON_EXISTS", "'$.a.b[4]'", "BOOLEAN FALSE"),
        ]
        .iter()
        .map(|(name, path, want)| format!("{name}({doc}, {path}) = {want}"))
        .collect();
        check(&rows);
        check(&[
            "JSON_VALUE('not json', '$.a') = STRING NULL",
            "JSON_EXISTS('not json', '$.a') = BOOLEAN FALSE",
            "JSON_VALUE('[10, 20]', '$[1]') = STRING 20",
        ]);
        let err = resolve(
            "JSON_VALUE",
            &[DataType::String, DataType::String],
            &[None, Some(Value::str("$.a[x]"))],
        )
        .expect_err("a bad path");
        assert_eq!(
            err,
            "function JSON_VALUE: invalid JSON path '$.a[x]': 'x' is not an array index"
        );
    }

    #[test]
    fn resolution_errors() {
        let s = DataType::String;
        type Case = (
            &'static str,
            Vec<DataType>,
            Vec<Option<Value>>,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                "SUBSTRING",
                vec![s.clone()],
                vec![],
                "function SUBSTRING expects 2 or 3 arguments, got 1",
            ),
            ("foo", vec![], vec![], "no function named FOO"),
            (
                "UPPER",
                vec![DataType::Int],
                vec![],
                "function UPPER expects STRING as argument 1, got INT",
            ),
            (
                "PI",
                vec![DataType::Int],
                vec![],
                "function PI expects no arguments, got 1",
            ),
            (
                "CONCAT",
                vec![],
                vec![],
                "function CONCAT expects at least 1 argument, got 0",
            ),
            (
                "UNIX_TIMESTAMP",
                vec![s.clone(); 3],
                vec![],
                "function UNIX_TIMESTAMP expects 0 to 2 arguments, got 3",
            ),
            (
                "COALESCE",
                vec![DataType::Int, s.clone()],
                vec![],
                "function COALESCE expects arguments of one type, got INT and STRING",
            ),
            (
                "IF",
                vec![DataType::Int, s.clone(), s.clone()],
                vec![],
                "function IF expects BOOLEAN as argument 1, got INT",
            ),
            (
                "YEAR",
                vec![s.clone()],
                vec![],
                "function YEAR expects a TIMESTAMP or DATE as argument 1, got STRING",
            ),
            (
                "REGEXP",
                vec![s.clone(), s.clone()],
                vec![None, Some(Value::str("(a"))],
                "function REGEXP: invalid regular expression '(a': unclosed group",
            ),
            (
                "DATE_FORMAT",
                vec![DataType::Timestamp(3), s.clone()],
                vec![None, Some(Value::str("yyyy-qq"))],
                "function DATE_FORMAT: invalid date format 'yyyy-qq': illegal pattern character 'q'",
            ),
            (
                "EXTRACT",
                vec![s.clone(), DataType::Timestamp(3)],
                vec![Some(Value::str("FORTNIGHT")), None],
                "function EXTRACT: unsupported time unit 'FORTNIGHT'",
            ),
            (
                "TIMESTAMPADD",
                vec![s.clone(), DataType::Int, DataType::Date],
                vec![Some(Value::str("DOW")), None, None],
                "function TIMESTAMPADD: unsupported time unit 'DOW'",
            ),
            (
                "TRIM",
                vec![s.clone(), s.clone(), s.clone()],
                vec![None, None, Some(Value::str("MIDDLE"))],
                "function TRIM: TRIM mode must be BOTH, LEADING or TRAILING, got 'MIDDLE'",
            ),
            (
                "TO_TIMESTAMP_LTZ",
                vec![DataType::BigInt, DataType::Int],
                vec![None, Some(Value::Int(6))],
                "function TO_TIMESTAMP_LTZ: precision must be 0 or 3, got 6",
            ),
        ];
        for (name, types, literals, want) in cases {
            let err = resolve(name, &types, &literals).expect_err(name);
            assert_eq!(err, want);
        }
        assert!(exists("substring") && exists("JSON_VALUE") && !exists("FOO"));
        // A regex that is not a constant and is invalid: NULL, as Flink.
        let f = resolve("REGEXP", &[s.clone(), s.clone()], &[]).expect("resolves");
        assert!(
            f.call(&[Value::str("a"), Value::str("(")])
                .expect("calls")
                .is_null()
        );
        assert!(f.call(&[Value::str("a")]).is_err());
    }

    #[test]
    fn result_types_follow_the_arguments() {
        let t = |name: &str, types: &[DataType]| {
            resolve(name, types, &[])
                .map(|f| f.return_type.to_string())
                .unwrap_or_else(|e| e)
        };
        use DataType::*;
        assert_eq!(t("ABS", &[SmallInt]), "SMALLINT");
        assert_eq!(t("MOD", &[BigInt, Int]), "INT");
        assert_eq!(t("FLOOR", &[Decimal(10, 2)]), "DECIMAL(10, 0)");
        assert_eq!(t("ROUND", &[Decimal(10, 2), Int]), "DECIMAL(10, 2)");
        assert_eq!(t("COALESCE", &[Int, BigInt]), "BIGINT");
        assert_eq!(t("COALESCE", &[Decimal(10, 2), Int]), "DECIMAL(12, 2)");
        assert_eq!(t("COALESCE", &[Float, Int]), "FLOAT");
        assert_eq!(t("GREATEST", &[Timestamp(3), Date]), "TIMESTAMP(3)");
        assert_eq!(t("IF", &[Boolean, Null, String]), "STRING");
        assert_eq!(t("NULLIF", &[Int, BigInt]), "INT");
        assert_eq!(
            t("TIMESTAMPADD", &[String, Int, TimestampLtz(3)]),
            "TIMESTAMP_LTZ(3)"
        );
        assert_eq!(t("TIMESTAMPADD", &[String, Int, Date]), "TIMESTAMP(3)");
        assert_eq!(t("FLOOR", &[Date, String]), "DATE");
    }

    #[test]
    fn casts_convert_as_flink() {
        use DataType::*;
        let cases: Vec<(&str, DataType, &str)> = vec![
            ("'42'", Int, "42"),
            ("' -42 '", BigInt, "-42"),
            ("'1.9'", Int, "1"),
            ("'abc'", Int, "error: cannot cast 'abc' to INT"),
            ("'1.2.3'", Int, "error: cannot cast '1.2.3' to INT"),
            (
                "'3000000000'",
                Int,
                "error: cannot cast '3000000000' to INT",
            ),
            ("3.99", Int, "3"),
            ("-3.99", Int, "-3"),
            ("300", TinyInt, "44"),
            ("1e20", BigInt, "9223372036854775807"),
            ("1e20", Int, "2147483647"),
            ("TRUE", Int, "1"),
            ("7", Double, "7"),
            ("' 2.5 '", Double, "2.5"),
            ("'x'", Double, "error: cannot cast 'x' to DOUBLE"),
            ("1.005", Decimal(5, 2), "1.01"),
            (
                "1000",
                Decimal(3, 0),
                "error: cannot cast 1000 to DECIMAL(3, 0)",
            ),
            ("1.0", String, "1.0"),
            ("1e7", String, "1.0E7"),
            ("1.5e-7", String, "1.5E-7"),
            ("0.001", String, "0.001"),
            ("0.0001", String, "1.0E-4"),
            ("123.456", String, "123.456"),
            ("-1234567.0", String, "-1234567.0"),
            ("12", String, "12"),
            ("TRUE", String, "TRUE"),
            ("'yes'", Boolean, "TRUE"),
            ("' FALSE '", Boolean, "FALSE"),
            ("'maybe'", Boolean, "error: cannot cast 'maybe' to BOOLEAN"),
            ("0", Boolean, "FALSE"),
            (
                "TIMESTAMP '2024-02-29 13:45:30.123'",
                String,
                "2024-02-29 13:45:30.123",
            ),
            (
                "'2024-02-29 13:45:30'",
                Timestamp(3),
                "2024-02-29 13:45:30.000",
            ),
            ("'2024-02-29'", TimestampLtz(3), "2024-02-29 00:00:00.000"),
            (
                "'Feb 29'",
                Timestamp(3),
                "error: cannot cast 'Feb 29' to TIMESTAMP(3)",
            ),
            ("TIMESTAMP '2024-02-29 13:45:30'", Date, "2024-02-29"),
            ("TIMESTAMP '1969-12-31 23:00:00'", Date, "1969-12-31"),
            ("DATE '2024-02-29'", Timestamp(3), "2024-02-29 00:00:00.000"),
            ("DATE '2024-02-29'", String, "2024-02-29"),
            ("'2024-02-29'", Date, "2024-02-29"),
            ("'abc'", Bytes, "x'616263'"),
            ("INTERVAL 90061001", String, "+1 01:01:01.001"),
            ("NULL", Int, "NULL"),
            ("5", Date, "error: cannot cast 5 to DATE"),
        ];
        let mut failures = Vec::new();
        for (arg, to, want) in cases {
            let value = literal(arg);
            let got = match cast(&value, &to) {
                Ok(v) => v.to_string(),
                Err(e) => format!("error: {e}"),
            };
            if got != want {
                failures.push(format!("CAST({arg} AS {to}) = {got:?}, want {want:?}"));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));

        let float = cast(&Value::Float(1.1), &Float).expect("casts");
        assert_eq!(cast(&float, &String).expect("casts").to_string(), "1.1");
        let array = Value::Array(vec![Value::Int(1), Value::Null].into());
        let strings = cast(&array, &Array(Box::new(String))).expect("casts");
        assert_eq!(strings.to_string(), "[1, NULL]");
        let row = Value::Row(vec![Value::Float(2.0), string_value("a")].into());
        assert_eq!(cast(&row, &String).expect("casts").to_string(), "(2.0, a)");
    }

    #[test]
    fn cast_checks_the_types() {
        use DataType::*;
        let ok = [
            (Int, String),
            (String, Timestamp(3)),
            (Timestamp(3), TimestampLtz(3)),
            (Timestamp(0), Timestamp(3)),
            (Date, Timestamp(3)),
            (TimestampLtz(3), Date),
            (Double, TinyInt),
            (Boolean, Int),
            (Int, Boolean),
            (Null, Date),
            (Array(Box::new(Int)), Array(Box::new(String))),
            (
                Row(vec![Field::new("a", Int)]),
                Row(vec![Field::new("b", BigInt)]),
            ),
        ];
        for (from, to) in ok {
            assert_eq!(check_cast(&from, &to), Ok(()), "{from} to {to}");
        }
        let refused = [
            (Boolean, Timestamp(3), "cannot cast BOOLEAN to TIMESTAMP(3)"),
            (Date, Int, "cannot cast DATE to INT"),
            (Double, Boolean, "cannot cast DOUBLE to BOOLEAN"),
            (
                String,
                Array(Box::new(Int)),
                "cannot cast STRING to ARRAY<INT>",
            ),
            (
                BigInt,
                Timestamp(3),
                "cannot cast BIGINT to TIMESTAMP(3): use TO_TIMESTAMP_LTZ(value, 0) for epoch \
                 seconds or TO_TIMESTAMP_LTZ(value, 3) for epoch milliseconds",
            ),
            (
                TimestampLtz(3),
                BigInt,
                "cannot cast TIMESTAMP_LTZ(3) to BIGINT: use UNIX_TIMESTAMP(CAST(value AS \
                 STRING)) for epoch seconds",
            ),
        ];
        for (from, to, want) in refused {
            assert_eq!(check_cast(&from, &to), Err(want.to_string()));
        }
    }

    #[test]
    fn pattern_arguments_that_vary_are_recompiled_per_text() {
        let f = resolve(
            "REGEXP_REPLACE",
            &[DataType::String, DataType::String, DataType::String],
            &[],
        )
        .expect("resolves");
        for (pattern, want) in [("a", "xbc"), ("b", "axc"), ("b", "axc"), ("[", "NULL")] {
            let got = f
                .call(&[Value::str("abc"), Value::str(pattern), Value::str("x")])
                .expect("calls");
            assert_eq!(got.to_string(), want);
        }
        let f = resolve("DATE_FORMAT", &[DataType::Date, DataType::String], &[]).expect("resolves");
        let err = f
            .call(&[Value::Date(0), Value::str("qq")])
            .expect_err("a bad format");
        assert_eq!(
            err,
            "invalid date format 'qq': illegal pattern character 'q'"
        );
    }
}
