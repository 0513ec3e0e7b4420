//! What the server's integration tests share: a config on free loopback ports, and a server
//! serving on the test's runtime until told to stop.

use std::path::Path;

use spate_server::{Config, Server};
use tokio::sync::oneshot;

/// The defaults with every listener on a free loopback port and data under `data_dir`.
pub fn local_config(data_dir: &Path) -> Config {
    Config {
        data_dir: data_dir.to_path_buf(),
        kafka_listen: "127.0.0.1:0".parse().expect("addr"),
        http_listen: "127.0.0.1:0".parse().expect("addr"),
        registry_listen: "127.0.0.1:0".parse().expect("addr"),
        connect_listen: None,
        sql_listen: None,
        ..Config::default()
    }
}

/// A bound server serving in its own task.
pub struct Serving {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Serving {
    /// Serves `server` until [`Serving::stop`].
    pub fn spawn(server: Server) -> Serving {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Serving {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops it as a SIGTERM would and waits until it has stopped.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }
}
