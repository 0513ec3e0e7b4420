//! Placeholder until the function library lands.
use crate::types::{DataType, Value};
/// A resolved scalar function.
pub struct Function {
    /// Name.
    pub name: String,
    /// The result type.
    pub return_type: DataType,
    eval: Box<dyn Fn(&[Value]) -> Result<Value, String> + Send + Sync>,
}
impl Function {
    /// Evaluates.
    pub fn call(&self, args: &[Value]) -> Result<Value, String> { (self.eval)(args) }
}
/// Resolves.
pub fn resolve(name: &str, arg_types: &[DataType], _literals: &[Option<Value>]) -> Result<Function, String> {
    match name.to_ascii_uppercase().as_str() {
        "UPPER" => Ok(Function { name: "UPPER".into(), return_type: DataType::String, eval: Box::new(|a| Ok(match &a[0] { Value::Str(s) => Value::str(&s.to_uppercase()), _ => Value::Null })) }),
        "COALESCE" => Ok(Function { name: "COALESCE".into(), return_type: arg_types.first().cloned().unwrap_or(DataType::Null), eval: Box::new(|a| Ok(a.iter().find(|v| !v.is_null()).cloned().unwrap_or(Value::Null))) }),
        _ => Err(format!("no function named {name}")),
    }
}
/// Known?
pub fn exists(name: &str) -> bool { matches!(name.to_ascii_uppercase().as_str(), "UPPER" | "COALESCE") }
/// CAST.
pub fn cast(value: &Value, to: &DataType) -> Result<Value, String> {
    Ok(match (value, to) {
        (Value::Null, _) => Value::Null,
        (Value::Int(i), DataType::String) => Value::str(&i.to_string()),
        (Value::Int(i), DataType::Double) => Value::Float(*i as f64),
        (Value::Float(f), t) if t.is_integer() => Value::Int(*f as i64),
        (Value::Str(s), t) if t.is_integer() => Value::Int(s.trim().parse().map_err(|_| format!("cannot cast '{s}' to {t}"))?),
        (v, _) => v.clone(),
    })
}
/// CAST allowed?
pub fn check_cast(_from: &DataType, _to: &DataType) -> Result<(), String> { Ok(()) }
