//! Translation between OpenAI's chat completions and Anthropic's Messages API: the request
//! (system messages to `system`, `max_tokens` required, `stop` to `stop_sequences`), the
//! answer (content blocks to one message, `stop_reason` to `finish_reason`, usage), and a
//! stream's events (`message_start`, `content_block_delta`, `message_delta`,
//! `message_stop`) to `chat.completion.chunk`s. Pure functions on JSON; no I/O.

use serde_json::{Map, Value as Json, json};

/// Anthropic's API version header value.
pub const VERSION: &str = "2023-06-01";

/// A request Anthropic cannot be given, with the parameter at fault.
#[derive(Debug)]
pub struct Untranslatable {
    /// The request's parameter.
    pub param: &'static str,
    /// Why.
    pub message: String,
}

fn untranslatable(param: &'static str, message: impl Into<String>) -> Untranslatable {
    Untranslatable {
        param,
        message: message.into(),
    }
}

/// One OpenAI content (a string or a list of parts) as Anthropic content blocks.
fn content_blocks(content: &Json) -> Result<Json, Untranslatable> {
    match content {
        Json::String(s) => Ok(Json::String(s.clone())),
        Json::Array(parts) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for part in parts {
                match part.get("type").and_then(Json::as_str) {
                    Some("text") => blocks.push(json!({
                        "type": "text",
                        "text": part.get("text").cloned().unwrap_or(Json::Null),
                    })),
                    Some("image_url") => {
                        let url = part
                            .pointer("/image_url/url")
                            .and_then(Json::as_str)
                            .unwrap_or_default();
                        let source = match url
                            .strip_prefix("data:")
                            .and_then(|rest| rest.split_once(";base64,"))
                        {
                            Some((media_type, data)) => {
                                json!({"type": "base64", "media_type": media_type, "data": data})
                            }
                            None => json!({"type": "url", "url": url}),
                        };
                        blocks.push(json!({"type": "image", "source": source}));
                    }
                    other => {
                        return Err(untranslatable(
                            "messages",
                            format!(
                                "content parts of type {other:?} are not translated for Anthropic providers"
                            ),
                        ));
                    }
                }
            }
            Ok(Json::Array(blocks))
        }
        Json::Null => Ok(Json::String(String::new())),
        _ => Err(untranslatable(
            "messages",
            "a message's content is a string or a list of parts",
        )),
    }
}

/// The text of a system message's content.
fn text_of(content: &Json) -> String {
    match content {
        Json::String(s) => s.clone(),
        Json::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Json::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// An OpenAI chat request as a Messages request for `model`.
pub fn request(
    body: &Map<String, Json>,
    model: &str,
    default_max_tokens: u64,
) -> Result<Json, Untranslatable> {
    let Some(messages) = body.get("messages").and_then(Json::as_array) else {
        return Err(untranslatable("messages", "`messages` must be a list"));
    };
    let mut system = Vec::new();
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        let role = m.get("role").and_then(Json::as_str).unwrap_or_default();
        let content = m.get("content").unwrap_or(&Json::Null);
        match role {
            "system" | "developer" => system.push(text_of(content)),
            "user" | "assistant" => {
                out.push(json!({"role": role, "content": content_blocks(content)?}));
            }
            other => {
                return Err(untranslatable(
                    "messages",
                    format!(
                        "messages with role {other:?} are not translated for Anthropic providers"
                    ),
                ));
            }
        }
    }
    if body.get("tools").is_some_and(|t| !t.is_null()) {
        return Err(untranslatable(
            "tools",
            "tools are not translated for Anthropic providers",
        ));
    }
    let max_tokens = body
        .get("max_completion_tokens")
        .and_then(Json::as_u64)
        .or_else(|| body.get("max_tokens").and_then(Json::as_u64))
        .unwrap_or(default_max_tokens);
    let mut req = Map::new();
    req.insert("model".into(), json!(model));
    req.insert("max_tokens".into(), json!(max_tokens));
    req.insert("messages".into(), Json::Array(out));
    if !system.is_empty() {
        req.insert("system".into(), json!(system.join("\n\n")));
    }
    for name in ["temperature", "top_p"] {
        if let Some(v) = body.get(name).filter(|v| !v.is_null()) {
            req.insert(name.into(), v.clone());
        }
    }
    match body.get("stop") {
        Some(Json::String(s)) => {
            req.insert("stop_sequences".into(), json!([s]));
        }
        Some(Json::Array(a)) => {
            req.insert("stop_sequences".into(), Json::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(user) = body.get("user").and_then(Json::as_str) {
        req.insert("metadata".into(), json!({"user_id": user}));
    }
    if body.get("stream").and_then(Json::as_bool) == Some(true) {
        req.insert("stream".into(), json!(true));
    }
    Ok(Json::Object(req))
}

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`.
fn finish_reason(stop_reason: Option<&str>) -> Json {
    match stop_reason {
        Some("max_tokens") => json!("length"),
        Some("tool_use") => json!("tool_calls"),
        Some("refusal") => json!("content_filter"),
        Some(_) => json!("stop"),
        None => Json::Null,
    }
}

fn usage(prompt: u64, completion: u64) -> Json {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

/// A Messages answer as a `chat.completion`.
pub fn response(message: &Json, created: i64) -> Json {
    let text: String = message
        .get("content")
        .and_then(Json::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b.get("type").and_then(Json::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Json::as_str))
                .collect()
        })
        .unwrap_or_default();
    let prompt = message
        .pointer("/usage/input_tokens")
        .and_then(Json::as_u64)
        .unwrap_or(0);
    let completion = message
        .pointer("/usage/output_tokens")
        .and_then(Json::as_u64)
        .unwrap_or(0);
    json!({
        "id": message.get("id").cloned().unwrap_or(json!("")),
        "object": "chat.completion",
        "created": created,
        "model": message.get("model").cloned().unwrap_or(Json::Null),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null},
            "logprobs": null,
            "finish_reason": finish_reason(message.get("stop_reason").and_then(Json::as_str)),
        }],
        "usage": usage(prompt, completion),
    })
}

/// Turns a Messages stream into `chat.completion.chunk`s.
#[derive(Debug)]
pub struct Stream {
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
    /// Prompt tokens, from `message_start`.
    pub prompt_tokens: u64,
    /// Completion tokens, from `message_delta`.
    pub completion_tokens: u64,
    stop_reason: Option<String>,
}

impl Stream {
    /// A translator; `include_usage` adds OpenAI's final usage chunk.
    pub fn new(created: i64, include_usage: bool) -> Stream {
        Stream {
            id: String::new(),
            model: String::new(),
            created,
            include_usage,
            prompt_tokens: 0,
            completion_tokens: 0,
            stop_reason: None,
        }
    }

    fn chunk(&self, delta: Json, finish: Json) -> String {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if self.include_usage
            && let Some(c) = chunk.as_object_mut()
        {
            c.insert("usage".into(), Json::Null);
        }
        chunk.to_string()
    }

    /// The chunks (JSON text) one event of type `name` with `data` gives; an upstream
    /// `error` event is returned as Err with its message.
    pub fn event(&mut self, name: &str, data: &str) -> Result<Vec<String>, String> {
        let data: Json = serde_json::from_str(data).unwrap_or(Json::Null);
        let kind = data
            .get("type")
            .and_then(Json::as_str)
            .unwrap_or(name)
            .to_string();
        let mut chunks = Vec::new();
        match kind.as_str() {
            "message_start" => {
                let m = data.get("message").unwrap_or(&Json::Null);
                self.id = m
                    .get("id")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string();
                self.model = m
                    .get("model")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string();
                self.prompt_tokens = m
                    .pointer("/usage/input_tokens")
                    .and_then(Json::as_u64)
                    .unwrap_or(0);
                self.completion_tokens = m
                    .pointer("/usage/output_tokens")
                    .and_then(Json::as_u64)
                    .unwrap_or(0);
                chunks.push(self.chunk(json!({"role": "assistant", "content": ""}), Json::Null));
            }
            "content_block_delta" => {
                if let Some(text) = data.pointer("/delta/text").and_then(Json::as_str) {
                    chunks.push(self.chunk(json!({"content": text}), Json::Null));
                }
            }
            "message_delta" => {
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Json::as_str) {
                    self.stop_reason = Some(reason.to_string());
                }
                if let Some(n) = data.pointer("/usage/output_tokens").and_then(Json::as_u64) {
                    self.completion_tokens = n;
                }
                if let Some(n) = data.pointer("/usage/input_tokens").and_then(Json::as_u64) {
                    self.prompt_tokens = n;
                }
            }
            "message_stop" => {
                chunks.push(self.chunk(
                    json!({}),
                    finish_reason(Some(self.stop_reason.as_deref().unwrap_or("end_turn"))),
                ));
                if self.include_usage {
                    chunks.push(
                        json!({
                            "id": self.id,
                            "object": "chat.completion.chunk",
                            "created": self.created,
                            "model": self.model,
                            "choices": [],
                            "usage": usage(self.prompt_tokens, self.completion_tokens),
                        })
                        .to_string(),
                    );
                }
            }
            "error" => {
                return Err(data
                    .pointer("/error/message")
                    .and_then(Json::as_str)
                    .unwrap_or("the upstream stream failed")
                    .to_string());
            }
            // ping, content_block_start, content_block_stop.
            _ => {}
        }
        Ok(chunks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(v: Json) -> Map<String, Json> {
        match v {
            Json::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn system_goes_to_system_and_max_tokens_is_required() {
        let body = object(json!({
            "model": "fast",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            ],
            "stop": "END",
            "temperature": 0.5,
        }));
        let req = request(&body, "claude-haiku-4-5", 1024).expect("translates");
        assert_eq!(
            req,
            json!({
                "model": "claude-haiku-4-5",
                "max_tokens": 1024,
                "system": "be brief",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                "temperature": 0.5,
                "stop_sequences": ["END"],
            })
        );
    }

    #[test]
    fn an_answer_becomes_a_chat_completion() {
        let answer = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "text", "text": "Hello"}],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 7, "output_tokens": 3},
        });
        let c = response(&answer, 5);
        assert_eq!(c["choices"][0]["message"]["content"], "Hello");
        assert_eq!(c["choices"][0]["finish_reason"], "length");
        assert_eq!(c["usage"]["total_tokens"], 10);
    }

    #[test]
    fn a_stream_becomes_chunks_with_usage_last() {
        let mut s = Stream::new(5, true);
        let mut chunks = Vec::new();
        for (name, data) in [
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":4,"output_tokens":1}}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ] {
            chunks.extend(s.event(name, data).expect("no error"));
        }
        let chunks: Vec<Json> = chunks
            .iter()
            .map(|c| serde_json::from_str(c).expect("json"))
            .collect();
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[3]["usage"]["prompt_tokens"], 4);
        assert_eq!(chunks[3]["usage"]["completion_tokens"], 2);
    }
}
