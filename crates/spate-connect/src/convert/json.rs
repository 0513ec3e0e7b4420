//! A JSON tree, parser and writer that read and write JSON as Jackson does for Kafka Connect's
//! `JsonConverter`: object keys keep their order, numbers keep their text (so a `Decimal` read
//! as a number keeps every digit, as Jackson's `USE_BIG_DECIMAL_FOR_FLOATS` does), and the
//! writer prints doubles, floats and escapes byte for byte as Jackson's default generator.
//! Works on bytes only; knows nothing of Connect's schemas.

use std::fmt::Write as _;

/// How deep arrays and objects may nest: Jackson's default `StreamReadConstraints`
/// (`maxNestingDepth` 1000, Jackson 2.15+).
pub(crate) const MAX_DEPTH: usize = 1000;

/// The longest number text accepted: Jackson's default `maxNumberLength` (1000).
const MAX_NUMBER_CHARS: usize = 1000;

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// A number as written: `-12`, `3.50`, `1E+3`.
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// Keys in order; a key appears once (a repeated key replaces the value in place, as
    /// Jackson's `ObjectNode` does).
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The value of key `name` of an object.
    pub(crate) fn get(&self, name: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Jackson's `getNodeType()` name, for messages.
    pub(crate) fn node_type(&self) -> &'static str {
        match self {
            Json::Null => "NULL",
            Json::Bool(_) => "BOOLEAN",
            Json::Number(_) => "NUMBER",
            Json::String(_) => "STRING",
            Json::Array(_) => "ARRAY",
            Json::Object(_) => "OBJECT",
        }
    }

    /// A number node for an integer.
    pub(crate) fn int(v: impl Into<i64>) -> Json {
        Json::Number(v.into().to_string())
    }

    /// A number node for a float32, as Jackson's `FloatNode` writes it (`Float.toString`);
    /// NaN and the infinities are written as strings, as Jackson does by default
    /// (`QUOTE_NON_NUMERIC_NUMBERS`).
    pub(crate) fn float32(v: f32) -> Json {
        if v.is_finite() {
            Json::Number(java_float_string(v))
        } else {
            Json::String(java_float_string(v))
        }
    }

    /// A number node for a float64 (`Double.toString`), non-finite values as strings.
    pub(crate) fn float64(v: f64) -> Json {
        if v.is_finite() {
            Json::Number(java_double_string(v))
        } else {
            Json::String(java_double_string(v))
        }
    }

    /// The text Jackson's `asText()` gives: a map key in object mode.
    pub(crate) fn as_text(&self) -> String {
        match self {
            Json::Null => "null".to_string(),
            Json::Bool(b) => b.to_string(),
            Json::Number(n) => n.clone(),
            Json::String(s) => s.clone(),
            Json::Array(_) | Json::Object(_) => String::new(),
        }
    }

    /// Appends the JSON text, compact, to `out`.
    pub(crate) fn write_to(&self, out: &mut String) {
        write(self, out);
    }

    /// The JSON text, compact, as Jackson's `ObjectMapper.writeValueAsBytes`.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        write(self, &mut out);
        out.into_bytes()
    }
}

/// A number's text is integral (Jackson's `isIntegralNumber`) when it has no fraction and no
/// exponent: `1.0` and `1e2` are floats, as Jackson parses them.
pub(crate) fn is_integral(text: &str) -> bool {
    !text.contains(['.', 'e', 'E'])
}

fn write(json: &Json, out: &mut String) {
    match json {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(n),
        Json::String(s) => write_string(s, out),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Json::Object(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write(v, out);
            }
            out.push('}');
        }
    }
}

/// Jackson's default escaping: `"` and `\`, the short forms for backspace, tab, newline, form
/// feed and carriage return, `\u00XX` with upper-case hex for the other control characters;
/// everything else (including non-ASCII and `/`) as UTF-8. Runs that need no escape are
/// copied whole.
pub(crate) fn write_string(s: &str, out: &mut String) {
    out.push('"');
    let mut rest = s;
    while let Some(i) = rest.bytes().position(|b| ESCAPED[usize::from(b)]) {
        // Every byte escaped is ASCII, so `i` and `i + 1` are on char boundaries.
        out.push_str(&rest[..i]);
        let b = rest.as_bytes()[i];
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x08 => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0C => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            _ => {
                let _ = write!(out, "\\u{:04X}", b);
            }
        }
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

/// The bytes [`write_string`] escapes: control characters, `"` and `\`.
static ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Appends an integer's decimal text.
pub(crate) fn write_int(v: impl Into<i64>, out: &mut String) {
    let _ = write!(out, "{}", v.into());
}

/// `Double.toString(v)` as JDK 19+ prints it (the shortest digits that read back as `v`):
/// plain between 10^-3 and 10^7 (`100.0`, `0.001`), otherwise `1.0E7`, `1.234E-5`.
pub(crate) fn java_double_string(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    java_decimal_string(v == 0.0, v.is_sign_negative(), &format!("{:e}", v.abs()), {
        let a = v.abs();
        (1e-3..1e7).contains(&a)
    })
}

/// `Float.toString(v)`: as [`java_double_string`] with the shortest digits for a float32.
pub(crate) fn java_float_string(v: f32) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    java_decimal_string(v == 0.0, v.is_sign_negative(), &format!("{:e}", v.abs()), {
        let a = v.abs();
        (1e-3..1e7).contains(&a)
    })
}

/// Lays out Rust's shortest `{:e}` digits (`1.2345e-5`) as Java does.
fn java_decimal_string(zero: bool, negative: bool, sci: &str, plain: bool) -> String {
    let sign = if negative { "-" } else { "" };
    if zero {
        return format!("{sign}0.0");
    }
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if plain {
        if exp >= 0 {
            let point = exp as usize + 1;
            let (int, frac) = if digits.len() > point {
                (digits[..point].to_string(), digits[point..].to_string())
            } else {
                (
                    format!("{digits}{}", "0".repeat(point - digits.len())),
                    "0".to_string(),
                )
            };
            format!("{sign}{int}.{frac}")
        } else {
            let zeros = "0".repeat((-exp - 1) as usize);
            format!("{sign}0.{zeros}{digits}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{sign}{first}.{rest}E{exp}")
    }
}

/// Why bytes are not JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    /// The byte offset where the problem is.
    pub offset: usize,
    /// What is wrong.
    pub reason: String,
}

/// Parses one JSON value. `Ok(None)` for empty (or all-whitespace) input, as Jackson's
/// `readTree` gives a `MissingNode`. Content after the first value is ignored, as Jackson's
/// `readTree` does with its default `FAIL_ON_TRAILING_TOKENS=false`. A UTF-8 byte order mark
/// is skipped.
pub(crate) fn parse(bytes: &[u8]) -> Result<Option<Json>, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut p = Parser { bytes, pos: 0 };
    p.skip_ws();
    if p.pos == bytes.len() {
        return Ok(None);
    }
    p.value(0).map(Some)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            offset: self.pos,
            reason: reason.into(),
        })
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn value(&mut self, depth: usize) -> Result<Json, ParseError> {
        match self.peek() {
            None => self.fail("unexpected end of input"),
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return self.fail(format!("nesting deeper than {MAX_DEPTH}"));
                }
                self.pos += 1;
                self.object(depth + 1)
            }
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return self.fail(format!("nesting deeper than {MAX_DEPTH}"));
                }
                self.pos += 1;
                self.array(depth + 1)
            }
            Some(b'"') => {
                self.pos += 1;
                self.string().map(Json::String)
            }
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b) => self.fail(format!("unexpected character {:?}", b as char)),
        }
    }

    fn literal(&mut self, word: &str, json: Json) -> Result<Json, ParseError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(json)
        } else {
            self.fail("unrecognized token")
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, ParseError> {
        let mut entries: Vec<(String, Json)> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Json::Object(entries));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return self.fail("expected a field name in double quotes");
            }
            self.pos += 1;
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return self.fail("expected ':' after a field name");
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value(depth)?;
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key, value)),
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Json::Object(entries));
                }
                _ => return self.fail("expected ',' or '}' in an object"),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, ParseError> {
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                _ => return self.fail("expected ',' or ']' in an array"),
            }
        }
    }

    /// After the opening quote.
    fn string(&mut self) -> Result<String, ParseError> {
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            match std::str::from_utf8(&self.bytes[start..self.pos]) {
                Ok(s) => out.push_str(s),
                Err(e) => {
                    self.pos = start + e.valid_up_to();
                    return self.fail("invalid UTF-8 in a string");
                }
            }
            match self.peek() {
                None => return self.fail("unexpected end of input in a string"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => return self.fail("unescaped control character in a string"),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), ParseError> {
        let Some(b) = self.peek() else {
            return self.fail("unexpected end of input in an escape");
        };
        self.pos += 1;
        let c = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{08}',
            b'f' => '\u{0C}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4()?;
                if (0xD800..0xDC00).contains(&first) && self.bytes[self.pos..].starts_with(b"\\u") {
                    let save = self.pos;
                    self.pos += 2;
                    let second = self.hex4()?;
                    if (0xDC00..0xE000).contains(&second) {
                        let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                        char::from_u32(code).unwrap_or('\u{FFFD}')
                    } else {
                        self.pos = save;
                        '\u{FFFD}'
                    }
                } else {
                    // A lone surrogate: Java keeps it in its UTF-16 string; a Rust string
                    // cannot, so it becomes U+FFFD.
                    char::from_u32(first).unwrap_or('\u{FFFD}')
                }
            }
            _ => return self.fail("unrecognized character escape"),
        };
        out.push(c);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let Some(hex) = self.bytes.get(self.pos..self.pos + 4) else {
            return self.fail("unexpected end of input in a \\u escape");
        };
        let Some(code) = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok())
        else {
            return self.fail("expected four hex digits after \\u");
        };
        self.pos += 4;
        Ok(code)
    }

    fn number(&mut self) -> Result<Json, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return self.fail("leading zeroes are not allowed in numbers");
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return self.fail("expected a digit"),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.fail("expected a digit after the decimal point");
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.fail("expected a digit in the exponent");
            }
            self.digits();
        }
        if self.pos - start > MAX_NUMBER_CHARS {
            self.pos = start;
            return self.fail(format!("number longer than {MAX_NUMBER_CHARS} characters"));
        }
        // Only ASCII was consumed.
        let text = String::from_utf8_lossy(&self.bytes[start..self.pos]).into_owned();
        Ok(Json::Number(text))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_as_java_double_to_string() {
        for (v, want) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (100.0, "100.0"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (1.5e-7, "1.5E-7"),
            (9_999_999.0, "9999999.0"),
            (1e7, "1.0E7"),
            (12_345_678.9, "1.23456789E7"),
            (-3.25, "-3.25"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::MAX, "1.7976931348623157E308"),
            (f64::MIN_POSITIVE, "2.2250738585072014E-308"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(java_double_string(v), want, "{v}");
        }
    }

    #[test]
    fn floats_print_as_java_float_to_string() {
        for (v, want) in [
            (1.1f32, "1.1"),
            (0.1f32, "0.1"),
            (3.0e10f32, "3.0E10"),
            (1.0e-4f32, "1.0E-4"),
            (16_777_216.0f32, "1.6777216E7"),
            (f32::INFINITY, "Infinity"),
        ] {
            assert_eq!(java_float_string(v), want, "{v}");
        }
    }

    #[test]
    fn strings_escape_as_jackson() {
        let json = Json::String("a\"b\\c/d\u{1}\u{1f}\n\té€\u{7f}".to_string());
        assert_eq!(
            String::from_utf8_lossy(&json.to_bytes()),
            "\"a\\\"b\\\\c/d\\u0001\\u001F\\n\\té€\u{7f}\""
        );
    }

    #[test]
    fn parse_keeps_order_and_number_text() {
        let json = parse(br#" {"b": [1, 2.50, -0, 1E+3], "a": "x\u00e9\ud83d\ude00", "b": null} "#)
            .expect("valid")
            .expect("present");
        assert_eq!(
            json,
            Json::Object(vec![
                ("b".to_string(), Json::Null),
                ("a".to_string(), Json::String("xé😀".to_string())),
            ])
        );
        let json = parse(b"[1, 2.50, -0, 1E+3]")
            .expect("valid")
            .expect("present");
        assert_eq!(json.to_bytes(), b"[1,2.50,-0,1E+3]");
    }

    #[test]
    fn parse_handles_empty_and_trailing_input_as_jackson() {
        assert_eq!(parse(b"").expect("empty"), None);
        assert_eq!(parse(b" \n").expect("blank"), None);
        assert_eq!(
            parse(b"{} trailing").expect("first value"),
            Some(Json::Object(vec![]))
        );
    }

    #[test]
    fn parse_rejects_what_jackson_rejects() {
        for bad in [
            &b"{"[..],
            b"[1,]",
            b"{'a':1}",
            b"01",
            b"1.",
            b"-",
            b"NaN",
            b"\"a\nb\"",
            b"\"\xff\"",
            b"{\"a\" 1}",
            b"tru",
            b"\"\\x\"",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn parse_limits_nesting() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let err = parse(deep.as_bytes()).expect_err("too deep");
        assert!(err.reason.contains("nesting"), "{err:?}");
    }
}
