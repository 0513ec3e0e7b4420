//! The schema registry follows `_schemas` while it runs: records another writer appends through
//! the broker (another registry instance, later a cluster peer) are served without a restart,
//! in offset order with the registry's own writes.
//!
//! Clients may not produce to `_schemas` (it is internal), so the second writer here is the
//! broker's own state-topic API, `Broker::append_state_records`, which is how another registry
//! in the same cluster would append; the records are in Confluent's `_schemas` format, as
//! Confluent's registry writes them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spate_server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::{Serving, local_config};

const DEADLINE: Duration = Duration::from_secs(20);

/// One HTTP/1.1 request on its own connection: the status and the body as JSON.
async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n\
         Content-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut response))
        .await
        .expect("the registry answers before the deadline")
        .expect("read");
    let text = String::from_utf8(response).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Asks until `check` holds for the answer, up to the deadline.
async fn wait_for(
    addr: SocketAddr,
    path: &str,
    what: &str,
    check: impl Fn(u16, &Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let (status, body) = http(addr, "GET", path, None).await;
        if check(status, &body) {
            return body;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: GET {path} still answers {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn schema_record(
    subject: &str,
    version: i32,
    id: i32,
    schema: &str,
    deleted: bool,
) -> (Vec<u8>, Option<Vec<u8>>) {
    let key = json!({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1});
    let value = json!({"subject": subject, "version": version, "id": id, "schema": schema, "deleted": deleted});
    (
        key.to_string().into_bytes(),
        Some(value.to_string().into_bytes()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_another_writer_appends_to_schemas_are_served_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::bind(local_config(dir.path())).await.expect("bind");
    let registry = server.registry_addr();
    let broker = std::sync::Arc::clone(server.broker());
    let serving = Serving::spawn(server);

    // The registry's own write: id 1, version 1, served at once.
    let (status, body) = http(
        registry,
        "POST",
        "/subjects/own/versions",
        Some(json!({"schema": "\"int\""})),
    )
    .await;
    assert_eq!((status, body), (200, json!({"id": 1})));

    // Another writer registers id 7 under another subject and sets a config.
    broker
        .append_state_records(
            "_schemas",
            &[
                schema_record("other", 1, 7, "\"string\"", false),
                (
                    json!({"keytype": "CONFIG", "subject": "own", "magic": 0})
                        .to_string()
                        .into_bytes(),
                    Some(
                        json!({"compatibilityLevel": "NONE"})
                            .to_string()
                            .into_bytes(),
                    ),
                ),
            ],
        )
        .await
        .expect("append to _schemas");
    let version = wait_for(
        registry,
        "/subjects/other/versions/1",
        "the tailed schema",
        |s, _| s == 200,
    )
    .await;
    assert_eq!(version["id"], json!(7));
    assert_eq!(version["schema"], json!("\"string\""));
    let (status, body) = http(registry, "GET", "/schemas/ids/7", None).await;
    assert_eq!((status, body), (200, json!({"schema": "\"string\""})));
    let (status, body) = http(registry, "GET", "/config/own", None).await;
    assert_eq!((status, body), (200, json!({"compatibilityLevel": "NONE"})));

    // The registry's next write comes after the tailed records: the next id is 8, and NONE
    // lets an incompatible schema in as version 2.
    let (status, body) = http(
        registry,
        "POST",
        "/subjects/own/versions",
        Some(json!({"schema": "{\"type\": \"enum\", \"name\": \"E\", \"symbols\": [\"A\"]}"})),
    )
    .await;
    assert_eq!((status, body), (200, json!({"id": 8})));
    let (status, body) = http(registry, "GET", "/subjects/own/versions", None).await;
    assert_eq!((status, body), (200, json!([1, 2])));

    // The other writer soft-deletes the registry's own version 1; the tail applies it after
    // the registration it follows (offset order), so it stays deleted.
    broker
        .append_state_records("_schemas", &[schema_record("own", 1, 1, "\"int\"", true)])
        .await
        .expect("append to _schemas");
    wait_for(
        registry,
        "/subjects/own/versions",
        "the tailed delete",
        |s, b| s == 200 && *b == json!([2]),
    )
    .await;
    let (status, body) = http(registry, "GET", "/subjects/own/versions?deleted=true", None).await;
    assert_eq!((status, body), (200, json!([1, 2])));

    serving.stop().await;
    // The broker holds its data directory until the last reference goes.
    drop(broker);

    // A restart replays the same records to the same state.
    let server = Server::bind(local_config(dir.path()))
        .await
        .expect("bind again");
    let registry = server.registry_addr();
    let serving = Serving::spawn(server);
    let (status, body) = http(registry, "GET", "/subjects/own/versions", None).await;
    assert_eq!((status, body), (200, json!([2])));
    let (status, body) = http(registry, "GET", "/subjects/other/versions/1", None).await;
    assert_eq!((status, body["id"].clone()), (200, json!(7)));
    serving.stop().await;
}
