//! What an index reads from a record: the text to embed (the whole value as UTF-8, JSON fields
//! joined by newlines, or a template over them), the metadata fields kept beside each vector,
//! and the text cut into overlapping chunks that fit the model's window.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// Where a record's text comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextSpec {
    /// JSON fields (dotted paths reach into nested objects), joined by newlines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// A template: `{field}` is replaced by the field's value, `{{` and `}}` are braces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// How long text is cut: chunks of at most `size` characters, each starting `size - overlap`
/// after the previous one, cut at a space where there is one in the chunk's second half.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chunking {
    /// Characters per chunk.
    pub size: usize,
    /// Characters a chunk repeats from the end of the one before.
    pub overlap: usize,
}

impl Default for Chunking {
    fn default() -> Self {
        Chunking {
            size: 1000,
            overlap: 100,
        }
    }
}

impl Chunking {
    /// Checks the sizes: the error is a 400's reason.
    pub fn check(&self) -> Result<(), String> {
        if self.size == 0 {
            return Err("`chunking.size` must be at least 1".into());
        }
        if self.overlap >= self.size {
            return Err(format!(
                "`chunking.overlap` ({}) must be less than `chunking.size` ({})",
                self.overlap, self.size
            ));
        }
        Ok(())
    }

    /// `text` in chunks (one empty chunk for an empty text).
    pub fn split(&self, text: &str) -> Vec<String> {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        if chars.len() <= self.size {
            return vec![text.to_string()];
        }
        let byte_at = |i: usize| chars.get(i).map_or(text.len(), |(b, _)| *b);
        let mut chunks = Vec::new();
        let mut start = 0;
        loop {
            let mut end = (start + self.size).min(chars.len());
            if end < chars.len() {
                // The last space in the chunk's second half, so words stay whole.
                if let Some(space) = (start + self.size / 2..end)
                    .rev()
                    .find(|&i| chars[i].1.is_whitespace())
                {
                    end = space + 1;
                }
            }
            chunks.push(text[byte_at(start)..byte_at(end)].trim().to_string());
            if end >= chars.len() {
                return chunks;
            }
            start = (end.saturating_sub(self.overlap)).max(start + 1);
        }
    }
}

/// The value at dotted `path` of `object`.
pub fn lookup<'a>(object: &'a Map<String, Json>, path: &str) -> Option<&'a Json> {
    let mut parts = path.split('.');
    let mut value = object.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

fn as_text(field: &str, value: Option<&Json>) -> Result<String, String> {
    match value {
        None | Some(Json::Null) => Err(format!("the field `{field}` is missing")),
        Some(Json::String(s)) => Ok(s.clone()),
        Some(v) => Ok(v.to_string()),
    }
}

impl TextSpec {
    /// Whether the record value is JSON (fields or a template) rather than plain text.
    pub fn reads_json(&self) -> bool {
        !self.fields.is_empty() || self.template.is_some()
    }

    /// Checks a template's braces: the error is a 400's reason.
    pub fn check(&self) -> Result<(), String> {
        if let Some(t) = &self.template {
            render(t, &Map::new()).map(|_| ()).or_else(|e| {
                if e.starts_with("the field") {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
        }
        Ok(())
    }

    /// The text of a record whose value is `value` (parsed JSON when [`Self::reads_json`]).
    pub fn text(&self, raw: &[u8], json: Option<&Map<String, Json>>) -> Result<String, String> {
        if !self.reads_json() {
            return std::str::from_utf8(raw)
                .map(str::to_string)
                .map_err(|_| "the value is not UTF-8 text".to_string());
        }
        let object = json.ok_or("the value is not a JSON object")?;
        if let Some(template) = &self.template {
            return render(template, object);
        }
        let parts = self
            .fields
            .iter()
            .map(|f| as_text(f, lookup(object, f)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(parts.join("\n"))
    }
}

fn render(template: &str, object: &Map<String, Json>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
        } else if tail.starts_with('}') {
            return Err("the template has a `}` with no `{` (write `}}` for a brace)".into());
        } else {
            let close = tail
                .find('}')
                .ok_or("the template has a `{` with no `}` (write `{{` for a brace)")?;
            let field = &tail[1..close];
            out.push_str(&as_text(field, lookup(object, field))?);
            rest = &tail[close + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The metadata `fields` of a JSON record (missing ones left out), keyed by the names given.
pub fn metadata(json: Option<&Map<String, Json>>, fields: &[String]) -> Map<String, Json> {
    let mut out = Map::new();
    if let Some(object) = json {
        for f in fields {
            if let Some(v) = lookup(object, f) {
                out.insert(f.clone(), v.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn text_comes_from_the_value_fields_or_a_template() {
        let doc = object(json!({"title": "Kafka", "body": "streams", "n": 3,
                                "author": {"name": "ann"}}));
        let plain = TextSpec::default();
        assert_eq!(plain.text(b"just text", None), Ok("just text".into()));
        assert!(plain.text(&[0xff, 0xfe], None).is_err());
        let fields = TextSpec {
            fields: vec!["title".into(), "body".into(), "author.name".into()],
            template: None,
        };
        assert_eq!(
            fields.text(b"", Some(&doc)),
            Ok("Kafka\nstreams\nann".into())
        );
        assert_eq!(
            fields.text(b"", None),
            Err("the value is not a JSON object".into())
        );
        let template = TextSpec {
            fields: vec![],
            template: Some("{title} ({n}) {{x}}: {body}".into()),
        };
        assert_eq!(
            template.text(b"", Some(&doc)),
            Ok("Kafka (3) {x}: streams".into())
        );
        let missing = TextSpec {
            fields: vec!["summary".into()],
            template: None,
        };
        assert_eq!(
            missing.text(b"", Some(&doc)),
            Err("the field `summary` is missing".into())
        );
        let broken = TextSpec {
            fields: vec![],
            template: Some("{title".into()),
        };
        assert!(broken.check().expect_err("unclosed").contains("no `}`"));
        assert_eq!(template.check(), Ok(()));
        assert_eq!(
            metadata(
                Some(&doc),
                &["n".into(), "author.name".into(), "gone".into()]
            ),
            object(json!({"n": 3, "author.name": "ann"}))
        );
    }

    #[test]
    fn long_text_is_cut_into_overlapping_chunks_at_spaces() {
        let chunking = Chunking {
            size: 20,
            overlap: 5,
        };
        assert_eq!(chunking.split("short"), vec!["short"]);
        let text = "alpha beta gamma delta epsilon zeta eta theta iota kappa";
        let chunks = chunking.split(text);
        assert!(chunks.len() > 2, "{chunks:?}");
        for c in &chunks {
            assert!(c.chars().count() <= 20, "{c:?}");
        }
        assert_eq!(chunks[0], "alpha beta gamma");
        // Every word is in some chunk, whole.
        for word in text.split(' ') {
            assert!(
                chunks.iter().any(|c| c.split(' ').any(|w| w == word)),
                "{word} in {chunks:?}"
            );
        }
        // No spaces: cut at the size, each chunk starting 15 after the last ([0, 20), [15, 35),
        // [30, 50)).
        let dense: String = (0..50u8).map(|i| char::from(b'0' + i % 10)).collect();
        let chunks = chunking.split(&dense);
        assert_eq!(chunks, [&dense[0..20], &dense[15..35], &dense[30..50]]);
        // Multi-byte characters are counted as characters.
        assert_eq!(chunking.split(&"é".repeat(20)).len(), 1);
        assert!(
            Chunking {
                size: 10,
                overlap: 10
            }
            .check()
            .is_err()
        );
    }
}
