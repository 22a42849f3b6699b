//! A damaged record does not block start-up, and it is counted and logged:
//! `herald_store_quarantined_messages{app=...}` in `/metrics`, an error
//! line naming the message when it is set aside, and a warning at the
//! next start that the store holds damaged messages.
//!
//! Its own test binary: it installs the global log subscriber, to read
//! the lines the store writes from its writer thread.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::ManualClock;
use herald_core::Tick;
use herald_server::{AppConfig, Config, Server};
use redb::{Database, TableDefinition};
use serde_json::json;
use support::{APP, KEY, TestServer};

/// Every log line, kept.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A server on `dir` (kept across restarts) and `clock`.
async fn start_in(dir: &Path, clock: &ManualClock) -> TestServer {
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_owned(),
        apps: vec![AppConfig::new(APP, KEY)],
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .expect("bind");
    let server = Server::with_listener_and_clock(config, listener, Arc::new(clock.clone()))
        .expect("server starts");
    TestServer {
        base: server.base_url(),
        server: Some(server),
        http: support::http_client(),
        dir: dir.to_owned(),
    }
}

async fn stop_keeping_dir(mut s: TestServer) {
    s.server
        .take()
        .expect("running")
        .shutdown()
        .await
        .expect("clean shutdown");
}

fn store_file(dir: &Path) -> PathBuf {
    dir.join("apps").join(APP).join(herald_redb::FILE_NAME)
}

#[tokio::test]
async fn a_damaged_record_is_counted_in_metrics_and_logged() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .init();

    let dir = support::temp_dir();
    let now = support::now_ms();
    let clock = ManualClock::new(Tick::from_millis(now));
    let s = start_in(&dir, &clock).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let st = s
            .publish("news", json!({"message": i, "publishAt": now + 60_000}))
            .await;
        ids.push(st["messageId"].as_str().expect("id").to_owned());
    }
    stop_keeping_dir(s).await;

    // Damage the header of the second message on disk.
    let damaged: herald::MessageId = ids[1].parse().expect("an id");
    {
        let db = Database::open(store_file(&dir)).expect("raw open");
        let txn = db.begin_write().expect("write");
        txn.open_table(TableDefinition::<u128, &[u8]>::new("headers"))
            .expect("headers")
            .insert(damaged.as_u128(), &[9u8; 86][..])
            .expect("insert");
        txn.commit().expect("commit");
    }

    // It starts, and the others fire; claiming the damaged one sets it
    // aside.
    let s = start_in(&dir, &clock).await;
    let gauge = format!("herald_store_quarantined_messages{{app=\"{APP}\"}}");
    assert_eq!(s.metric(&gauge).await, Some(0.0), "not met yet");
    clock.advance(Duration::from_secs(60));
    s.wait_metric(&gauge, 1.0).await;
    for (i, id) in ids.iter().enumerate() {
        let (code, body) = s.get(&s.url(&format!("messaging/{id}"))).await;
        if i == 1 {
            assert_eq!(code, 500, "a quarantined message's status: {body}");
            assert!(
                body["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("quarantine"),
                "{body}"
            );
        } else {
            assert_eq!(code, 200, "{body}");
            assert_ne!(body["status"], "scheduled", "it fired: {body}");
        }
    }
    let logged = capture
        .lines()
        .into_iter()
        .filter(|l| l.contains("ERROR") && l.contains("quarantine") && l.contains(&ids[1]))
        .count();
    assert_eq!(logged, 1, "one error line names it: {:?}", capture.lines());
    stop_keeping_dir(s).await;

    // The next start counts it at once, and says so.
    let s = start_in(&dir, &clock).await;
    assert_eq!(s.metric(&gauge).await, Some(1.0));
    assert!(
        capture
            .lines()
            .iter()
            .any(|l| l.contains("WARN") && l.contains("quarantine") && l.contains("messages=1")),
        "{:?}",
        capture.lines()
    );
    s.stop().await;
}
