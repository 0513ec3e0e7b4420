//! Record routing and selection: `RegexRouter`, `Filter`, and the predicates
//! `TopicNameMatches`, `HasHeaderKey` and `RecordIsTombstone`.

use std::sync::Arc;

use regex::Regex;

use super::{Cfg, Fail, Predicate, PredicateSync, Smt};
use crate::data::ConnectRecord;

/// `Filter`: drops every record it is applied to (so, with a predicate, the matching ones).
struct Filter;

pub(super) fn filter(_cfg: &mut Cfg<'_>) -> Option<Box<dyn Smt>> {
    Some(Box::new(Filter))
}

impl Smt for Filter {
    fn apply(&mut self, _record: ConnectRecord) -> Result<Option<ConnectRecord>, Fail> {
        Ok(None)
    }
}

/// A piece of a Java replacement string (`Matcher.appendReplacement`).
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(String),
    Group(usize),
    Named(String),
}

/// A Java regex compiled for `Matcher.matches()` (the whole text) and for `find()`.
pub(super) struct JavaRegex {
    whole: Regex,
    find: Regex,
}

impl JavaRegex {
    pub(super) fn new(pattern: &str) -> Result<JavaRegex, String> {
        let find = Regex::new(pattern).map_err(|e| e.to_string())?;
        let whole = Regex::new(&format!(r"\A(?:{pattern})\z")).map_err(|e| e.to_string())?;
        Ok(JavaRegex { whole, find })
    }

    pub(super) fn matches(&self, text: &str) -> bool {
        self.whole.is_match(text)
    }
}

/// Parses a Java replacement: `\x` is a literal x, `$n` a group (digits taken while the number
/// stays a valid group, as Java does), `${name}` a named group.
fn parse_replacement(text: &str, re: &Regex) -> Result<Vec<Piece>, String> {
    let groups = re.captures_len() - 1;
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let Some(&c) = chars.get(i + 1) else {
                    return Err("character to be escaped is missing".into());
                };
                lit.push(c);
                i += 2;
            }
            '$' => {
                i += 1;
                if chars.get(i) == Some(&'{') {
                    let end = chars[i..]
                        .iter()
                        .position(|&c| c == '}')
                        .ok_or("named capturing group is missing trailing '}'")?;
                    let name: String = chars[i + 1..i + end].iter().collect();
                    if !re.capture_names().any(|n| n == Some(name.as_str())) {
                        return Err(format!("no group with name {{{name}}}"));
                    }
                    if !lit.is_empty() {
                        out.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    out.push(Piece::Named(name));
                    i += end + 1;
                } else {
                    let Some(first) = chars.get(i).and_then(|c| c.to_digit(10)) else {
                        return Err("illegal group reference".into());
                    };
                    let mut n = first as usize;
                    if n > groups {
                        return Err(format!("no group {n}"));
                    }
                    i += 1;
                    while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                        let next = n * 10 + d as usize;
                        if next > groups {
                            break;
                        }
                        n = next;
                        i += 1;
                    }
                    if !lit.is_empty() {
                        out.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    out.push(Piece::Group(n));
                }
            }
            c => {
                lit.push(c);
                i += 1;
            }
        }
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    Ok(out)
}

/// `RegexRouter`: when the whole topic matches `regex`, it becomes `replacement` (Java's
/// `replaceFirst`, with `$1` group references).
struct RegexRouter {
    regex: JavaRegex,
    replacement: Vec<Piece>,
}

pub(super) fn regex_router(cfg: &mut Cfg<'_>) -> Option<Box<dyn Smt>> {
    let pattern = cfg.required("regex");
    let replacement = cfg.required("replacement");
    let regex = match JavaRegex::new(&pattern?) {
        Ok(r) => r,
        Err(why) => {
            cfg.problem("regex", format!("invalid regular expression: {why}"));
            return None;
        }
    };
    // Java fails on a bad group reference only when a topic matches; Spate says so up front.
    match parse_replacement(&replacement?, &regex.find) {
        Ok(replacement) => Some(Box::new(RegexRouter { regex, replacement })),
        Err(why) => {
            cfg.problem(
                "replacement",
                format!("invalid replacement for the regex: {why}"),
            );
            None
        }
    }
}

impl RegexRouter {
    fn route(&self, topic: &str) -> Option<String> {
        if !self.regex.matches(topic) {
            return None;
        }
        let caps = self.regex.find.captures(topic)?;
        let whole = caps.get(0)?;
        let mut out = String::with_capacity(topic.len());
        out.push_str(&topic[..whole.start()]);
        for piece in &self.replacement {
            match piece {
                Piece::Lit(l) => out.push_str(l),
                Piece::Group(n) => out.push_str(caps.get(*n).map_or("", |m| m.as_str())),
                Piece::Named(n) => out.push_str(caps.name(n).map_or("", |m| m.as_str())),
            }
        }
        out.push_str(&topic[whole.end()..]);
        Some(out)
    }
}

impl Smt for RegexRouter {
    fn apply(&mut self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, Fail> {
        if let Some(topic) = self.route(&record.topic) {
            record.topic = topic;
        }
        Ok(Some(record))
    }
}

/// `TopicNameMatches`: the whole topic name matches `pattern`.
struct TopicNameMatches(JavaRegex);

pub(super) fn topic_name_matches(cfg: &mut Cfg<'_>) -> Option<Arc<dyn PredicateSync>> {
    let pattern = cfg.required_non_empty("pattern")?;
    match JavaRegex::new(&pattern) {
        Ok(re) => Some(Arc::new(TopicNameMatches(re))),
        Err(why) => {
            cfg.problem("pattern", format!("invalid regular expression: {why}"));
            None
        }
    }
}

impl Predicate for TopicNameMatches {
    fn test(&self, record: &ConnectRecord) -> bool {
        self.0.matches(&record.topic)
    }
}

/// `HasHeaderKey`: the record has at least one header named `name`.
struct HasHeaderKey(String);

pub(super) fn has_header_key(cfg: &mut Cfg<'_>) -> Option<Arc<dyn PredicateSync>> {
    Some(Arc::new(HasHeaderKey(cfg.required_non_empty("name")?)))
}

impl Predicate for HasHeaderKey {
    fn test(&self, record: &ConnectRecord) -> bool {
        record.header(&self.0).is_some()
    }
}

/// `RecordIsTombstone`: the value is null.
struct RecordIsTombstone;

pub(super) fn record_is_tombstone(_cfg: &mut Cfg<'_>) -> Option<Arc<dyn PredicateSync>> {
    Some(Arc::new(RecordIsTombstone))
}

impl Predicate for RecordIsTombstone {
    fn test(&self, record: &ConnectRecord) -> bool {
        record.value.is_null()
    }
}
