//! One module per subcommand. `serve` starts the server; `schema` is a schema registry (REST)
//! client; `profile` manages connection profiles; the others are Kafka clients.
//! `client_args` (connection flags and profiles), `registry` (the registry's REST client) and
//! `wire` (schema'd records in Confluent's wire format) are shared by several commands.

pub mod acl;
pub mod ai;
pub mod client_args;
pub mod cluster;
pub mod connect;
pub mod consume;
pub mod group;
pub mod produce;
pub mod profile;
pub mod quota;
pub mod registry;
pub mod schema;
pub mod serve;
pub mod sql;
pub mod topic;
pub mod user;
pub mod wire;

/// Resolves on Ctrl-C or SIGTERM: the workers' (`spate connect worker`, `spate sql worker`)
/// signal to stop cleanly.
pub async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// The `Authorization` header for an HTTP API of `spate serve --http-auth` (Connect's, SQL's):
/// basic credentials from `{env}_USER` and `{env}_PASSWORD` (secrets from the environment, not
/// flags, so they stay out of process listings) or the URL's `user:password@`, or a bearer
/// token from `{env}_TOKEN`.
pub fn http_authorization(
    api: &str,
    env: &str,
    from_url: Option<(String, String)>,
) -> anyhow::Result<Option<String>> {
    use base64::Engine as _;
    let var = |suffix: &str| {
        std::env::var(format!("{env}_{suffix}"))
            .ok()
            .filter(|v| !v.is_empty())
    };
    let basic = match (var("USER"), from_url) {
        (Some(user), _) => {
            let Some(password) = var("PASSWORD") else {
                anyhow::bail!("{env}_USER={user} needs the password in {env}_PASSWORD");
            };
            Some((user, password))
        }
        (None, from_url) => from_url,
    };
    Ok(match (basic, var("TOKEN")) {
        (Some(_), Some(_)) => anyhow::bail!(
            "give {api} either basic credentials ({env}_USER or user:password@ in the URL) or {env}_TOKEN, not both"
        ),
        (Some((user, password)), None) => Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )),
        (None, Some(token)) => Some(format!("Bearer {}", token.trim())),
        (None, None) => None,
    })
}

/// Calls an HTTP API of Spate's (`api` names it in errors; `env` is its credentials'
/// prefix, as [`http_authorization`]) and returns its JSON; an error answer becomes an error
/// with the API's message (`message`, or OpenAI's `error.message`) and the status.
pub fn http_json(
    api: &str,
    env: &str,
    url: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context as _;
    let (base, from_url) = registry::split_user_info(url)?;
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into();
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(&url)
        .header("Accept", "application/json")
        .header("Content-Type", "application/json");
    if let Some(authorization) = http_authorization(api, env, from_url)? {
        request = request.header("Authorization", authorization);
    }
    let request = request
        .body(body.map(|b| b.to_string()).unwrap_or_default())
        .context("building the request")?;
    let mut response = agent
        .run(request)
        .with_context(|| format!("cannot reach {api} at {base}"))?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let json: serde_json::Value = if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()))
    };
    if status >= 400 {
        let message = json
            .get("message")
            .or_else(|| json.get("error").and_then(|e| e.get("message")))
            .and_then(|m| m.as_str())
            .unwrap_or(&text);
        anyhow::bail!("{message} (HTTP {status})");
    }
    Ok(json)
}
