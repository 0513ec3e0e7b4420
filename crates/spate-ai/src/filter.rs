//! Metadata filters for vector queries, in the language of Cloudflare Vectorize and Pinecone:
//! `{"genre": "drama"}` (equality), `{"year": {"$gte": 2020, "$lt": 2024}}`, `$eq $ne $in $nin
//! $lt $lte $gt $gte $exists`, several keys meaning AND, `$and`/`$or` over lists of filters
//! (Pinecone), and dotted keys reaching into nested metadata (`"author.name"`). A filter is
//! checked when it is parsed, so an unknown operator or a malformed operand is a 400 with the
//! reason, and applied to each candidate before the top k are chosen.

use serde_json::{Map, Value as Json};

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every filter holds.
    And(Vec<Filter>),
    /// Some filter holds.
    Or(Vec<Filter>),
    /// A comparison on the value at a (dotted) path.
    Field {
        /// The path's parts (`author.name` → `["author", "name"]`).
        path: Vec<String>,
        /// The comparison.
        op: Op,
    },
}

/// A comparison of a metadata value with an operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `$eq`
    Eq(Json),
    /// `$ne`
    Ne(Json),
    /// `$in`
    In(Vec<Json>),
    /// `$nin`
    Nin(Vec<Json>),
    /// `$lt`
    Lt(Json),
    /// `$lte`
    Lte(Json),
    /// `$gt`
    Gt(Json),
    /// `$gte`
    Gte(Json),
    /// `$exists`
    Exists(bool),
}

/// The largest filter accepted, as compact JSON (Vectorize's limit).
pub const MAX_FILTER_BYTES: usize = 2048;

impl Filter {
    /// Parses a filter; the error says what is wrong, for a 400.
    pub fn parse(json: &Json) -> Result<Filter, String> {
        if json.to_string().len() > MAX_FILTER_BYTES {
            return Err(format!(
                "the filter is over {MAX_FILTER_BYTES} bytes of JSON"
            ));
        }
        Self::parse_object(json)
    }

    fn parse_object(json: &Json) -> Result<Filter, String> {
        let object = json
            .as_object()
            .ok_or_else(|| format!("a filter is a JSON object, not {json}"))?;
        let mut all = Vec::with_capacity(object.len());
        for (key, value) in object {
            match key.as_str() {
                "$and" | "$or" => {
                    let parts = value
                        .as_array()
                        .ok_or_else(|| format!("`{key}` takes a list of filters"))?
                        .iter()
                        .map(Self::parse_object)
                        .collect::<Result<Vec<_>, _>>()?;
                    all.push(if key == "$and" {
                        Filter::And(parts)
                    } else {
                        Filter::Or(parts)
                    });
                }
                k if k.starts_with('$') => {
                    return Err(format!(
                        "unknown operator `{k}` at the top of the filter (`$and`, `$or`, or a field name)"
                    ));
                }
                "" => return Err("a filter's field name is empty".into()),
                field => {
                    let path: Vec<String> = field.split('.').map(str::to_string).collect();
                    match value {
                        Json::Object(ops) if ops.keys().any(|k| k.starts_with('$')) => {
                            for (op, operand) in ops {
                                all.push(Filter::Field {
                                    path: path.clone(),
                                    op: Op::parse(field, op, operand)?,
                                });
                            }
                        }
                        Json::Object(_) | Json::Array(_) => {
                            return Err(format!(
                                "`{field}`: compare with a string, number, boolean or null, or an operator object"
                            ));
                        }
                        v => all.push(Filter::Field {
                            path,
                            op: Op::Eq(v.clone()),
                        }),
                    }
                }
            }
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Filter::And(all)
        })
    }

    /// Whether `metadata` passes.
    pub fn matches(&self, metadata: &Map<String, Json>) -> bool {
        match self {
            Filter::And(parts) => parts.iter().all(|f| f.matches(metadata)),
            Filter::Or(parts) => parts.iter().any(|f| f.matches(metadata)),
            Filter::Field { path, op } => op.holds(lookup(metadata, path)),
        }
    }
}

fn lookup<'a>(metadata: &'a Map<String, Json>, path: &[String]) -> Option<&'a Json> {
    let (first, rest) = path.split_first()?;
    let mut value = metadata.get(first)?;
    for part in rest {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

fn scalar(field: &str, op: &str, v: &Json) -> Result<Json, String> {
    match v {
        Json::Object(_) | Json::Array(_) => Err(format!(
            "`{field}`: `{op}` takes a string, number, boolean or null"
        )),
        v => Ok(v.clone()),
    }
}

fn ordered(field: &str, op: &str, v: &Json) -> Result<Json, String> {
    match v {
        Json::Number(_) | Json::String(_) => Ok(v.clone()),
        _ => Err(format!("`{field}`: `{op}` takes a number or a string")),
    }
}

impl Op {
    fn parse(field: &str, op: &str, operand: &Json) -> Result<Op, String> {
        let list = || -> Result<Vec<Json>, String> {
            operand
                .as_array()
                .ok_or_else(|| format!("`{field}`: `{op}` takes a list"))?
                .iter()
                .map(|v| scalar(field, op, v))
                .collect()
        };
        Ok(match op {
            "$eq" => Op::Eq(scalar(field, op, operand)?),
            "$ne" => Op::Ne(scalar(field, op, operand)?),
            "$in" => Op::In(list()?),
            "$nin" => Op::Nin(list()?),
            "$lt" => Op::Lt(ordered(field, op, operand)?),
            "$lte" => Op::Lte(ordered(field, op, operand)?),
            "$gt" => Op::Gt(ordered(field, op, operand)?),
            "$gte" => Op::Gte(ordered(field, op, operand)?),
            "$exists" => Op::Exists(
                operand
                    .as_bool()
                    .ok_or_else(|| format!("`{field}`: `$exists` takes true or false"))?,
            ),
            other => {
                return Err(format!(
                    "`{field}`: unknown operator `{other}` ($eq $ne $in $nin $lt $lte $gt $gte $exists)"
                ));
            }
        })
    }

    fn holds(&self, value: Option<&Json>) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self {
            Op::Exists(want) => value.is_some() == *want,
            Op::Eq(v) => value.is_some_and(|x| same(x, v)),
            Op::Ne(v) => !value.is_some_and(|x| same(x, v)),
            Op::In(vs) => value.is_some_and(|x| vs.iter().any(|v| same(x, v))),
            Op::Nin(vs) => !value.is_some_and(|x| vs.iter().any(|v| same(x, v))),
            Op::Lt(v) => compare(value, v).is_some_and(|o| o == Less),
            Op::Lte(v) => compare(value, v).is_some_and(|o| o != Greater),
            Op::Gt(v) => compare(value, v).is_some_and(|o| o == Greater),
            Op::Gte(v) => compare(value, v).is_some_and(|o| o == Greater || o == Equal),
        }
    }
}

/// Equality, with numbers compared as numbers (1 equals 1.0).
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Numbers with numbers, strings with strings; anything else does not compare.
fn compare(value: Option<&Json>, operand: &Json) -> Option<std::cmp::Ordering> {
    match (value?, operand) {
        (Json::Number(x), Json::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Json::String(x), Json::String(y)) => Some(x.as_str().cmp(y.as_str())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn passes(filter: Json, metadata: Json) -> bool {
        Filter::parse(&filter)
            .expect("parses")
            .matches(&meta(metadata))
    }

    #[test]
    fn each_operator_filters_as_vectorize_and_pinecone_do() {
        let doc = json!({"genre": "drama", "year": 2021, "rating": 4.5, "draft": false,
                         "author": {"name": "ann"}});
        assert!(passes(json!({"genre": "drama"}), doc.clone()));
        assert!(!passes(json!({"genre": "comedy"}), doc.clone()));
        assert!(passes(json!({"genre": {"$ne": "comedy"}}), doc.clone()));
        assert!(passes(json!({"year": {"$in": [2020, 2021]}}), doc.clone()));
        assert!(passes(json!({"year": {"$nin": [2019]}}), doc.clone()));
        assert!(passes(
            json!({"year": {"$gte": 2021, "$lt": 2022}}),
            doc.clone()
        ));
        assert!(!passes(json!({"year": {"$gt": 2021}}), doc.clone()));
        assert!(passes(json!({"rating": {"$lte": 4.5}}), doc.clone()));
        assert!(passes(json!({"year": 2021.0}), doc.clone()));
        assert!(passes(
            json!({"draft": false, "author.name": "ann"}),
            doc.clone()
        ));
        assert!(passes(json!({"missing": {"$exists": false}}), doc.clone()));
        assert!(passes(json!({"missing": {"$ne": "x"}}), doc.clone()));
        assert!(!passes(json!({"missing": {"$lt": 3}}), doc.clone()));
        assert!(passes(
            json!({"$or": [{"genre": "comedy"}, {"year": {"$lt": 2022}}]}),
            doc.clone()
        ));
        assert!(!passes(
            json!({"$and": [{"genre": "drama"}, {"year": {"$lt": 2000}}]}),
            doc
        ));
    }

    #[test]
    fn a_bad_filter_says_what_is_wrong() {
        let error = |f: Json| Filter::parse(&f).expect_err("refused");
        assert!(error(json!({"year": {"$regex": "x"}})).contains("unknown operator `$regex`"));
        assert!(error(json!({"$not": {}})).contains("unknown operator `$not`"));
        assert!(error(json!({"year": {"$in": 3}})).contains("`$in` takes a list"));
        assert!(error(json!({"year": {"$lt": true}})).contains("number or a string"));
        assert!(error(json!(["x"])).contains("is a JSON object"));
        let long = "x".repeat(MAX_FILTER_BYTES);
        assert!(error(json!({ "k": long })).contains("2048 bytes"));
    }
}
