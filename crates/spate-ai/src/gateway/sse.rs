//! Server-sent events, both ways: an incremental parser for upstream streams (bytes arrive in
//! any pieces; an event ends at a blank line) and the `data: ...\n\n` framing OpenAI's
//! streams use. No I/O.

/// One event: its `event:` name (empty when none) and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field.
    pub name: String,
    /// The `data:` field.
    pub data: String,
}

/// The longest event accepted from an upstream.
pub const MAX_EVENT_BYTES: usize = 16 << 20;

/// Collects bytes into events.
#[derive(Debug, Default)]
pub struct Parser {
    buffer: Vec<u8>,
    name: String,
    data: Option<String>,
}

/// An upstream event larger than [`MAX_EVENT_BYTES`].
#[derive(Debug, thiserror::Error)]
#[error("an upstream event is larger than {MAX_EVENT_BYTES} bytes")]
pub struct TooLarge;

impl Parser {
    /// Feeds `bytes`; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Event>, TooLarge> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(end) = self.buffer[start..].iter().position(|&b| b == b'\n') {
            let line = &self.buffer[start..start + end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = String::from_utf8_lossy(line).into_owned();
            start += end + 1;
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    events.push(Event {
                        name: std::mem::take(&mut self.name),
                        data,
                    });
                }
                self.name.clear();
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_str(), ""),
            };
            match field {
                "event" => self.name = value.to_string(),
                "data" => match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_string()),
                },
                _ => {}
            }
        }
        self.buffer.drain(..start);
        let held = self.buffer.len() + self.data.as_ref().map_or(0, String::len);
        if held > MAX_EVENT_BYTES {
            return Err(TooLarge);
        }
        Ok(events)
    }
}

/// `data: {data}\n\n`.
pub fn frame(data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
    out
}

/// The end of an OpenAI stream.
pub const DONE: &str = "[DONE]";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let text = "event: message_start\r\ndata: {\"a\":1}\r\n\r\n: comment\ndata: x\ndata: y\n\ndata: [DONE]\n\n";
        for cut in 0..text.len() {
            let mut p = Parser::default();
            let mut events = p.push(&text.as_bytes()[..cut]).expect("small");
            events.extend(p.push(&text.as_bytes()[cut..]).expect("small"));
            assert_eq!(
                events,
                vec![
                    Event {
                        name: "message_start".into(),
                        data: "{\"a\":1}".into()
                    },
                    Event {
                        name: String::new(),
                        data: "x\ny".into()
                    },
                    Event {
                        name: String::new(),
                        data: "[DONE]".into()
                    },
                ],
                "cut at {cut}"
            );
        }
    }
}
