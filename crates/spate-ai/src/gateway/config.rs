//! The gateway's configuration: the `[ai-gateway]` section of Spate's TOML file (providers,
//! virtual keys, default limits, the cache, what each call's record holds), typed with
//! defaults and checked once at start-up with errors that name the field. It reads no
//! environment itself except a provider's `api-key-env`, in [`GatewayConfig::validate`].

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[ai-gateway]`: the OpenAI-compatible gateway in front of model providers.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct GatewayConfig {
    /// `[[ai-gateway.providers]]`, in the order a model falls back through them.
    pub providers: Vec<ProviderConfig>,
    /// `[[ai-gateway.keys]]`: virtual keys clients send as `Authorization: Bearer <key>`.
    pub keys: Vec<KeyConfig>,
    /// Refuse requests whose bearer token is no virtual key (when http-auth is off).
    pub require_key: bool,
    /// Limits of each principal, and of virtual keys with none of their own.
    pub limits: LimitsConfig,
    /// The exact-match response cache.
    pub cache: CacheConfig,
    /// What each call's record in `_ai_requests` holds.
    pub log: LogConfig,
}

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI's `POST {base-url}/chat/completions` (OpenAI, vLLM, Ollama, llama.cpp, ...).
    #[default]
    Openai,
    /// Anthropic's Messages API, `POST {base-url}/v1/messages`.
    Anthropic,
}

impl ProviderKind {
    /// The name records and metrics use.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }
}

/// `[[ai-gateway.providers]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProviderConfig {
    /// The provider's name (also the `name/model` prefix that picks it).
    pub name: String,
    /// `openai` or `anthropic`.
    pub kind: ProviderKind,
    /// For `openai`, the URL that `/chat/completions` follows (`https://api.openai.com/v1`);
    /// for `anthropic`, the one `/v1/messages` follows (`https://api.anthropic.com`).
    pub base_url: String,
    /// The provider's API key.
    pub api_key: Option<String>,
    /// An environment variable holding the API key (read at start-up).
    pub api_key_env: Option<String>,
    /// Models requests may name, as the provider names them.
    pub models: Vec<String>,
    /// Other names for models: `alias = "provider's model"`.
    pub aliases: BTreeMap<String, String>,
    /// How long one attempt may take (until the first byte of a stream).
    pub timeout_ms: u64,
    /// Attempts after the first on 429, 5xx, connection errors and timeouts.
    pub retries: u32,
    /// The first retry's wait; each further one doubles it.
    pub retry_backoff_ms: u64,
    /// US dollars per million prompt tokens, for the records' `cost_usd`.
    pub input_price_per_1m: f64,
    /// US dollars per million completion tokens.
    pub output_price_per_1m: f64,
    /// Anthropic's required `max_tokens` when the request gives none.
    pub default_max_tokens: u64,
}

impl Default for ProviderConfig {
    fn default() -> ProviderConfig {
        ProviderConfig {
            name: String::new(),
            kind: ProviderKind::Openai,
            base_url: String::new(),
            api_key: None,
            api_key_env: None,
            models: Vec::new(),
            aliases: BTreeMap::new(),
            timeout_ms: 60_000,
            retries: 2,
            retry_backoff_ms: 200,
            input_price_per_1m: 0.0,
            output_price_per_1m: 0.0,
            default_max_tokens: 1024,
        }
    }
}

/// `[[ai-gateway.keys]]`: a virtual key.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct KeyConfig {
    /// The name records, usage and metrics show.
    pub name: String,
    /// The secret clients send as `Authorization: Bearer <key>`.
    pub key: Option<String>,
    /// An environment variable holding the secret.
    pub key_env: Option<String>,
    /// Requests per minute (unset: `[ai-gateway.limits]`).
    pub requests_per_minute: Option<u64>,
    /// Prompt and completion tokens per minute (unset: `[ai-gateway.limits]`).
    pub tokens_per_minute: Option<u64>,
}

/// `[ai-gateway.limits]`: each principal's (or virtual key's) budget; unset is unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per minute.
    pub requests_per_minute: Option<u64>,
    /// Prompt and completion tokens per minute.
    pub tokens_per_minute: Option<u64>,
}

/// `[ai-gateway.cache]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct CacheConfig {
    /// How long an answer is served again; 0 caches only requests that send
    /// `cf-aig-cache-ttl`.
    pub ttl_seconds: u64,
    /// Answers kept at most (least recently used go first).
    pub max_entries: usize,
    /// Bytes of requests and answers kept at most.
    pub max_bytes: usize,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            ttl_seconds: 0,
            max_entries: 1024,
            max_bytes: 64 << 20,
        }
    }
}

/// `[ai-gateway.log]`: what goes into `_ai_requests` beside the counts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct LogConfig {
    /// Include the request and response bodies.
    pub bodies: bool,
    /// JSON fields whose values are replaced by `"[REDACTED]"` in logged bodies, at any depth
    /// (e.g. `["content"]`).
    pub redact: Vec<String>,
    /// Records waiting for the producer at most; more are dropped and counted.
    pub queue: usize,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            bodies: false,
            redact: Vec::new(),
            queue: 10_000,
        }
    }
}

/// A setting that cannot work, named as in the TOML file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {field}: {reason}")]
pub struct ConfigError {
    /// The setting, e.g. `ai-gateway.providers[0].base-url`.
    pub field: String,
    /// What is wrong and what to do.
    pub reason: String,
}

fn invalid(field: String, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        reason: reason.into(),
    }
}

/// A secret given inline or by environment variable.
fn secret(
    field: &str,
    value: &Option<String>,
    env: &Option<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    match (value, env) {
        (Some(_), Some(_)) => Err(invalid(
            field.to_string(),
            "give the secret or its environment variable (-env), not both",
        )),
        (Some(v), None) => Ok(Some(v.clone())),
        (None, Some(var)) => lookup(var).map(Some).ok_or_else(|| {
            invalid(
                format!("{field}-env"),
                format!("the environment variable {var} is not set"),
            )
        }),
        (None, None) => Ok(None),
    }
}

/// A provider with its key resolved.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Its settings.
    pub config: ProviderConfig,
    /// The API key.
    pub api_key: Option<String>,
}

/// A virtual key with its secret resolved.
#[derive(Debug, Clone)]
pub struct Key {
    /// Its settings.
    pub config: KeyConfig,
    /// The bearer token that presents it.
    pub secret: String,
}

impl GatewayConfig {
    /// Whether any provider is configured (otherwise the gateway is off).
    pub fn enabled(&self) -> bool {
        !self.providers.is_empty()
    }

    /// Checks the settings and resolves secrets from the environment through `lookup`.
    pub fn validate(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Vec<Provider>, Vec<Key>), ConfigError> {
        let mut providers: Vec<Provider> = Vec::new();
        for (i, p) in self.providers.iter().enumerate() {
            let field = |name: &str| format!("ai-gateway.providers[{i}].{name}");
            if p.name.is_empty() || p.name.contains('/') {
                return Err(invalid(
                    field("name"),
                    "give each provider a name without `/`",
                ));
            }
            if providers.iter().any(|q| q.config.name == p.name) {
                return Err(invalid(
                    field("name"),
                    format!("two providers are called {:?}", p.name),
                ));
            }
            if !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://")) {
                return Err(invalid(
                    field("base-url"),
                    format!("{:?} is not an http:// or https:// URL", p.base_url),
                ));
            }
            if p.models.is_empty() && p.aliases.is_empty() {
                return Err(invalid(
                    field("models"),
                    "list the models requests may ask this provider for",
                ));
            }
            if p.timeout_ms == 0 {
                return Err(invalid(field("timeout-ms"), "must be at least 1"));
            }
            if p.retries > 10 {
                return Err(invalid(field("retries"), "at most 10"));
            }
            if !(p.input_price_per_1m >= 0.0 && p.output_price_per_1m >= 0.0) {
                return Err(invalid(
                    field("input-price-per-1m"),
                    "prices are zero or more",
                ));
            }
            if p.default_max_tokens == 0 {
                return Err(invalid(field("default-max-tokens"), "must be at least 1"));
            }
            let api_key = secret(&field("api-key"), &p.api_key, &p.api_key_env, lookup)?;
            providers.push(Provider {
                config: p.clone(),
                api_key,
            });
        }
        let mut keys: Vec<Key> = Vec::new();
        for (i, k) in self.keys.iter().enumerate() {
            let field = |name: &str| format!("ai-gateway.keys[{i}].{name}");
            if k.name.is_empty() {
                return Err(invalid(field("name"), "give each virtual key a name"));
            }
            let Some(secret) = secret(&field("key"), &k.key, &k.key_env, lookup)? else {
                return Err(invalid(field("key"), "give the key (or key-env)"));
            };
            if secret.is_empty() {
                return Err(invalid(field("key"), "must not be empty"));
            }
            if keys
                .iter()
                .any(|o| o.secret == secret || o.config.name == k.name)
            {
                return Err(invalid(
                    field("key"),
                    "two virtual keys share a name or a secret",
                ));
            }
            keys.push(Key {
                config: k.clone(),
                secret,
            });
        }
        if self.cache.max_entries == 0 || self.cache.max_bytes == 0 {
            return Err(invalid(
                "ai-gateway.cache.max-entries".into(),
                "max-entries and max-bytes must be at least 1",
            ));
        }
        if self.log.queue == 0 {
            return Err(invalid("ai-gateway.log.queue".into(), "must be at least 1"));
        }
        Ok((providers, keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> GatewayConfig {
        #[derive(Deserialize)]
        struct Outer {
            #[serde(rename = "ai-gateway")]
            gateway: GatewayConfig,
        }
        let outer: Outer = toml::from_str(text).expect("parses");
        outer.gateway
    }

    #[test]
    fn providers_and_keys_resolve_with_defaults() {
        let config = parse(
            r#"
            [ai-gateway]
            [[ai-gateway.providers]]
            name = "claude"
            kind = "anthropic"
            base-url = "https://api.anthropic.com"
            api-key-env = "TEST_KEY"
            models = ["claude-sonnet-4-5"]
            aliases = { fast = "claude-haiku-4-5" }
            [[ai-gateway.keys]]
            name = "team-a"
            key = "sk-a"
            requests-per-minute = 5
            "#,
        );
        let (providers, keys) = config
            .validate(&|v| (v == "TEST_KEY").then(|| "secret".to_string()))
            .expect("valid");
        assert_eq!(providers[0].api_key.as_deref(), Some("secret"));
        assert_eq!(providers[0].config.kind, ProviderKind::Anthropic);
        assert_eq!(providers[0].config.retries, 2);
        assert_eq!(keys[0].secret, "sk-a");
        assert_eq!(keys[0].config.requests_per_minute, Some(5));
    }

    #[test]
    fn a_bad_setting_is_named() {
        let config = parse(
            r#"
            [[ai-gateway.providers]]
            name = "x"
            base-url = "ftp://nowhere"
            models = ["m"]
            "#,
        );
        let err = config.validate(&|_| None).expect_err("invalid");
        assert_eq!(err.field, "ai-gateway.providers[0].base-url");
        let config = parse(
            r#"
            [[ai-gateway.providers]]
            name = "x"
            base-url = "http://localhost"
            api-key-env = "UNSET_VARIABLE"
            models = ["m"]
            "#,
        );
        let err = config.validate(&|_| None).expect_err("invalid");
        assert!(err.to_string().contains("api-key-env"), "{err}");
    }
}
