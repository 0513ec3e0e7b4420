//! Content negotiation as Confluent Schema Registry does it (its resources' `@Produces` and
//! `@Consumes`, negotiated by Jersey): which media type a response is written in, which
//! request bodies are read, and the 406 and 415 answers.
//!
//! - Responses are `application/vnd.schemaregistry.v1+json` (quality 1),
//!   `application/vnd.schemaregistry+json` (0.9) or `application/json` (0.5). Each `Accept`
//!   range is paired with each of them that it matches; the pair with the highest client `q`
//!   wins, then the highest server quality, then the range with fewer wildcards (Jersey's
//!   `CombinedMediaType` order). No `Accept` is `*/*`, so the first one; nothing acceptable is
//!   406.
//! - Request bodies (POST and PUT: every route that reads one) must be one of the three, or
//!   `application/octet-stream`, which is also what a request without `Content-Type` counts as;
//!   anything else is 415, answered in the first type the client lists that the registry
//!   produces (rest-utils' `WebApplicationExceptionMapper`).
//!
//! It applies to matched routes only: an unknown path is 404 whatever the headers say, as in
//! Jersey, which matches the path before it negotiates.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::RegistryError;

/// The registry's own media type, and its default.
pub const SCHEMA_REGISTRY_V1_JSON: &str = "application/vnd.schemaregistry.v1+json";
const SCHEMA_REGISTRY_JSON: &str = "application/vnd.schemaregistry+json";
const JSON: &str = "application/json";
const OCTET_STREAM: &str = "application/octet-stream";

/// What responses may be, with Confluent's server-side qualities (`qs`), best first.
const PRODUCES: [(&str, f32); 3] = [
    (SCHEMA_REGISTRY_V1_JSON, 1.0),
    (SCHEMA_REGISTRY_JSON, 0.9),
    (JSON, 0.5),
];

/// What request bodies may be.
const CONSUMES: [&str; 4] = [
    SCHEMA_REGISTRY_V1_JSON,
    SCHEMA_REGISTRY_JSON,
    JSON,
    OCTET_STREAM,
];

/// One range of an `Accept` header.
#[derive(Debug, Clone, PartialEq)]
struct Range {
    kind: String,
    subtype: String,
    q: f32,
}

impl Range {
    fn matches(&self, media_type: &str) -> bool {
        let (kind, subtype) = media_type.split_once('/').unwrap_or((media_type, ""));
        (self.kind == "*" || self.kind == kind) && (self.subtype == "*" || self.subtype == subtype)
    }

    fn wildcards(&self) -> u8 {
        u8::from(self.kind == "*") + u8::from(self.subtype == "*")
    }
}

/// The ranges of the `Accept` headers, in order; `*` alone counts as `*/*`, as Java clients
/// send it. Entries that are not media ranges are skipped.
fn accept_ranges(headers: &HeaderMap) -> Vec<Range> {
    let mut ranges = Vec::new();
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for entry in value.split(',') {
            let mut parts = entry.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if media.is_empty() {
                continue;
            }
            let (kind, subtype) = match media.split_once('/') {
                Some((kind, subtype)) => (kind.trim().to_string(), subtype.trim().to_string()),
                None if media == "*" => ("*".to_string(), "*".to_string()),
                None => continue,
            };
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, q)| q.trim().parse::<f32>().ok())
                .unwrap_or(0.0);
            ranges.push(Range { kind, subtype, q });
        }
    }
    ranges
}

/// The media type to answer in, or `None` when the client accepts none the registry produces.
fn response_type(headers: &HeaderMap) -> Option<&'static str> {
    let ranges = accept_ranges(headers);
    if ranges.is_empty() && headers.get(header::ACCEPT).is_none() {
        return Some(SCHEMA_REGISTRY_V1_JSON);
    }
    let mut best: Option<(f32, f32, u8, &'static str)> = None;
    for range in ranges.iter().filter(|r| r.q > 0.0) {
        for (media_type, qs) in PRODUCES {
            if !range.matches(media_type) {
                continue;
            }
            let candidate = (range.q, qs, range.wildcards(), media_type);
            let better = best.is_none_or(|(q, best_qs, wildcards, _)| {
                (candidate.0, candidate.1) > (q, best_qs)
                    || ((candidate.0, candidate.1) == (q, best_qs) && candidate.2 < wildcards)
            });
            if better {
                best = Some(candidate);
            }
        }
    }
    best.map(|(_, _, _, media_type)| media_type)
}

/// The media type of a 415 answer: the first type the client accepts, by `q`, that is exactly
/// one the registry produces, else the default (rest-utils' manual negotiation for 415).
fn unsupported_media_type_answer_type(headers: &HeaderMap) -> &'static str {
    let mut ranges = accept_ranges(headers);
    ranges.sort_by(|a, b| b.q.total_cmp(&a.q));
    ranges
        .iter()
        .find_map(|range| {
            PRODUCES
                .iter()
                .map(|(media_type, _)| *media_type)
                .find(|media_type| range.wildcards() == 0 && range.matches(media_type))
        })
        .unwrap_or(SCHEMA_REGISTRY_V1_JSON)
}

/// Whether the request's body may be read: no `Content-Type` is `application/octet-stream`.
fn body_type_supported(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let media = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    CONSUMES.contains(&media.as_str())
}

fn with_type(mut response: Response, media_type: &'static str) -> Response {
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    response
}

/// The middleware: 415 for a body the registry does not read, 406 for a response nobody
/// accepts, else the route's answer in the negotiated media type.
pub async fn negotiate(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let reads_body = matches!(*request.method(), Method::POST | Method::PUT);
    if reads_body && !body_type_supported(headers) {
        let media_type = unsupported_media_type_answer_type(headers);
        return with_type(
            RegistryError::unsupported_media_type().into_response(),
            media_type,
        );
    }
    let Some(media_type) = response_type(headers) else {
        return RegistryError::not_acceptable().into_response();
    };
    with_type(next.run(request).await, media_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name, HeaderValue::from_str(value).expect("header value"));
        }
        map
    }

    fn accept(value: &str) -> Option<&'static str> {
        response_type(&headers(&[(header::ACCEPT, value)]))
    }

    #[test]
    fn responses_are_the_registry_type_unless_the_client_prefers_another() {
        assert_eq!(
            response_type(&HeaderMap::new()),
            Some(SCHEMA_REGISTRY_V1_JSON)
        );
        assert_eq!(accept("*/*"), Some(SCHEMA_REGISTRY_V1_JSON));
        assert_eq!(accept("application/*"), Some(SCHEMA_REGISTRY_V1_JSON));
        assert_eq!(accept("application/json"), Some(JSON));
        assert_eq!(accept("Application/JSON; charset=utf-8"), Some(JSON));
        assert_eq!(
            accept("application/vnd.schemaregistry+json"),
            Some(SCHEMA_REGISTRY_JSON)
        );
        // What Confluent's clients send: the registry's own type wins on server quality.
        assert_eq!(
            accept(
                "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json"
            ),
            Some(SCHEMA_REGISTRY_V1_JSON)
        );
        // Client quality first, then server quality, as Jersey combines them.
        assert_eq!(
            accept("application/vnd.schemaregistry.v1+json;q=0.4, application/json"),
            Some(JSON)
        );
        assert_eq!(
            accept("application/json, */*"),
            Some(SCHEMA_REGISTRY_V1_JSON)
        );
        assert_eq!(accept("application/json, */*;q=0.9"), Some(JSON));
        // Java's default Accept header.
        assert_eq!(
            accept("text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"),
            Some(SCHEMA_REGISTRY_V1_JSON)
        );
    }

    #[test]
    fn nothing_acceptable_is_none() {
        assert_eq!(accept("text/html"), None);
        assert_eq!(accept("application/xml, text/*"), None);
        assert_eq!(accept("application/json;q=0"), None);
        assert_eq!(accept("garbage"), None);
    }

    #[test]
    fn bodies_are_read_in_the_four_types_confluent_consumes() {
        let body = |value: &str| body_type_supported(&headers(&[(header::CONTENT_TYPE, value)]));
        assert!(body_type_supported(&HeaderMap::new()));
        assert!(body("application/vnd.schemaregistry.v1+json"));
        assert!(body("application/vnd.schemaregistry+json"));
        assert!(body("application/json; charset=UTF-8"));
        assert!(body("application/octet-stream"));
        assert!(!body("text/plain"));
        assert!(!body("application/xml"));
        assert!(!body("application/x-www-form-urlencoded"));
    }

    #[test]
    fn unsupported_bodies_are_answered_in_a_type_the_client_named() {
        let answer =
            |value: &str| unsupported_media_type_answer_type(&headers(&[(header::ACCEPT, value)]));
        assert_eq!(answer("application/json"), JSON);
        assert_eq!(answer("text/html, application/json"), JSON);
        assert_eq!(answer("*/*"), SCHEMA_REGISTRY_V1_JSON);
        assert_eq!(
            unsupported_media_type_answer_type(&HeaderMap::new()),
            SCHEMA_REGISTRY_V1_JSON
        );
    }
}
