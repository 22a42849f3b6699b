//! Three real `herald-server` processes on one PostgreSQL database
//! (`--store $DATABASE_URL`), as the README runs them: any node accepts
//! publishes, cancels and status reads; a real-time subscriber on any node
//! receives what was published or fired on any node, once; a scheduled
//! message published on a node that is then killed fires on time on the
//! others; a cancel on one node stops a repeat published on another.
//!
//! Run once on the store's own bus (PostgreSQL `LISTEN/NOTIFY`) and, with
//! `REDIS_URL`, once with `--bus $REDIS_URL`. Without `DATABASE_URL` it
//! prints one `SKIPPED:` line.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use support::{RawWs, now_ms};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc;

const KEY: &str = "cluster-key";
const CHANNEL: &str = "cl";
/// The engines' default horizon: a killed node's reserved runs fire at
/// most this late elsewhere.
const HORIZON_MS: u64 = 2_000;
/// Bounds every wait (a broken cluster fails instead of hanging).
const WAIT: Duration = Duration::from_secs(30);

struct Node {
    child: Child,
    base: String,
    addr: std::net::SocketAddr,
    _stdout: Lines<BufReader<ChildStdout>>,
    /// Its data directory, removed with the node.
    dir: std::path::PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Node {
    fn url(&self, app: &str, path: &str) -> String {
        format!("{}/{app}/{KEY}/{path}", self.base)
    }
}

async fn start(db: &str, bus: Option<&str>, app: &str, name: &str) -> Node {
    let app_arg = format!("{app}:{KEY}");
    let mut args = vec!["--app", app_arg.as_str()];
    if let Some(bus) = bus {
        args.extend(["--bus", bus]);
    }
    spawn_node(db, name, &args, |_| {}).await
}

/// Starts the binary on `db` as node `name` with `args` (in a data
/// directory of its own, the test's `HERALD_*` settings cleared), handing
/// each line it prints before "listening on" to `line`.
async fn spawn_node(db: &str, name: &str, args: &[&str], mut line: impl FnMut(&str)) -> Node {
    let dir = support::temp_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald-server"))
        .args(["--listen", "127.0.0.1:0", "--store", db, "--node-id", name])
        .args(args)
        .arg("--data-dir")
        .arg(&dir)
        .env("HERALD_LOG", "warn")
        .env_remove("HERALD_APP")
        .env_remove("HERALD_BUS")
        .env_remove("HERALD_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn herald-server");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base = tokio::time::timeout(WAIT, async {
        loop {
            let next = lines
                .next_line()
                .await
                .expect("read stdout")
                .expect("herald-server exited before listening");
            match next.strip_prefix("herald-server listening on ") {
                Some(url) => return url.trim().to_owned(),
                None => line(&next),
            }
        }
    })
    .await
    .expect("herald-server listens in time");
    let addr = base
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .expect("http://ADDR");
    Node {
        child,
        base,
        addr,
        _stdout: lines,
        dir,
    }
}

/// A real-time subscriber to `CHANNEL` on `node`: each `SUB_RES`'s data
/// (`messageId`, `timestamp`, `message`, …) and its receive time.
async fn subscribe(node: &Node, app: &str) -> mpsc::UnboundedReceiver<(Value, u64)> {
    let (mut ws, open) = RawWs::open(node.addr, app, KEY).await;
    assert!(open["sid"].is_string(), "{open}");
    let answer = ws.connect_nsp().await;
    assert!(answer.starts_with(&format!("40/{app},")), "{answer}");
    ws.emit(
        "SUB_ON",
        &json!({"id": "s", "name": "PUB_SUB_MESSAGES", "options": {"channel": CHANNEL}}),
    )
    .await;
    let (name, _) = ws.next_event().await;
    assert_eq!(name, "SUB_READY");
    let (tx, rx) = mpsc::unbounded_channel();
    let prefix = format!("42/{app},");
    tokio::spawn(async move {
        while let Some(text) = ws.recv_text().await {
            let Some(event) = text.strip_prefix(&prefix) else {
                continue;
            };
            let v: Value = serde_json::from_str(event).expect("event JSON");
            if v[0] == "SUB_RES" && tx.send((v[1]["data"].clone(), now_ms())).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next run's message (and when it arrived).
async fn next(rx: &mut mpsc::UnboundedReceiver<(Value, u64)>, what: &str) -> (Value, u64) {
    let (data, at) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
        .expect("subscriber alive");
    (data["message"].clone(), at)
}

async fn post(http: &reqwest::Client, url: &str, body: Value) -> Value {
    let res = http.post(url).json(&body).send().await.expect("POST");
    assert_eq!(res.status(), 200, "{url}");
    res.json().await.expect("JSON")
}

async fn get(http: &reqwest::Client, url: &str) -> Value {
    let res = http.get(url).send().await.expect("GET");
    assert_eq!(res.status(), 200, "{url}");
    res.json().await.expect("JSON")
}

/// Polls `id`'s status on `node` (bounded) until `pred` holds.
async fn status_until(
    http: &reqwest::Client,
    node: &Node,
    app: &str,
    id: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let st = get(http, &node.url(app, &format!("messaging/{id}"))).await;
        if pred(&st) {
            return st;
        }
        assert!(tokio::time::Instant::now() < deadline, "status stayed {st}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn three_nodes(db: &str, bus: Option<&str>) {
    let app = format!(
        "CLUSTER-{}-{:08x}",
        if bus.is_some() { "REDIS" } else { "PG" },
        now_ms() as u32 ^ std::process::id()
    );
    let mut a = start(db, bus, &app, "a").await;
    let b = start(db, bus, &app, "b").await;
    let c = start(db, bus, &app, "c").await;
    let http = support::http_client();
    let mut on_b = subscribe(&b, &app).await;
    let mut on_c = subscribe(&c, &app).await;
    let publish = |node: &Node, body: Value| {
        let url = node.url(&app, &format!("messaging/{CHANNEL}"));
        let http = http.clone();
        async move { post(&http, &url, body).await }
    };

    // 1. Published now on A: B's and C's subscribers get it, once; the
    //    status on C counts both deliveries.
    let now = publish(&a, json!({"message": "now"})).await;
    assert_eq!(now["status"], "published");
    for (rx, node) in [(&mut on_b, "b"), (&mut on_c, "c")] {
        let (m, _) = next(rx, &format!("the immediate run on {node}")).await;
        assert_eq!(m, json!("now"), "on {node}");
    }
    let id = now["messageId"].as_str().unwrap();
    status_until(&http, &c, &app, id, |s| s["deliveries"]["pubsub"] == 2).await;

    // 2. A cancel on C of a repeat published on B: cancelled everywhere,
    //    and no later run reaches anyone (a marker published after the
    //    cancel arrives with nothing of the repeat before it).
    let t0 = now_ms();
    let rep = publish(
        &b,
        json!({"message": "beat", "publishAt": t0 + 800, "repeatEvery": 1, "repeatExpiresAt": t0 + 20_000}),
    )
    .await;
    let rep_id = rep["messageId"].as_str().unwrap().to_owned();
    for (rx, node) in [(&mut on_b, "b"), (&mut on_c, "c")] {
        let (m, _) = next(rx, &format!("the first run of the repeat on {node}")).await;
        assert_eq!(m, json!("beat"), "on {node}");
    }
    let cancelled = {
        // Backendless cancels with DELETE.
        let res = http
            .delete(c.url(&app, &format!("messaging/{rep_id}")))
            .send()
            .await
            .expect("DELETE");
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()
    };
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let on_a = get(&http, &a.url(&app, &format!("messaging/{rep_id}"))).await;
    assert_eq!(on_a["status"], "cancelled", "seen from A: {on_a}");
    publish(
        &a,
        json!({"message": "marker", "publishAt": now_ms() + 2_500}),
    )
    .await;
    for (rx, node) in [(&mut on_b, "b"), (&mut on_c, "c")] {
        loop {
            let (m, _) = next(rx, &format!("the marker on {node}")).await;
            if m == json!("marker") {
                break;
            }
            // A run already being delivered when the cancel landed may
            // finish; it is the one right after the first at most.
            assert_eq!(m, json!("beat"), "on {node}");
        }
    }
    let runs = get(&http, &b.url(&app, &format!("messaging/{rep_id}"))).await["deliveries"]["runs"]
        .as_u64()
        .unwrap();
    assert!(
        (1..=2).contains(&runs),
        "the repeat stopped at the cancel: {runs} runs"
    );

    // 3. Scheduled on A, then A is killed: it fires once, on time, on B
    //    or C (at most one horizon late), and both subscribers get it.
    let due = now_ms() + 1_500;
    let late = publish(&a, json!({"message": "orphan", "publishAt": due})).await;
    a.child.start_kill().expect("kill A");
    let _ = a.child.wait().await;
    for (rx, node) in [(&mut on_b, "b"), (&mut on_c, "c")] {
        let (m, at) = next(rx, &format!("the orphan on {node}")).await;
        assert_eq!(m, json!("orphan"), "on {node}");
        assert!(at + 50 >= due, "on {node}: {at} before its time {due}");
        assert!(
            at <= due + HORIZON_MS + 3_000,
            "on {node}: {} ms late",
            at - due
        );
    }
    let st = status_until(&http, &b, &app, late["messageId"].as_str().unwrap(), |s| {
        s["status"] == "published"
    })
    .await;
    assert_eq!(st["deliveries"]["runs"], 1, "once: {st}");

    // /health and /metrics on a live node say the store and bus are up.
    let health = get(&http, &format!("{}/health", c.base)).await;
    assert_eq!(health["status"], "ok", "{health}");
    let metrics = http
        .get(format!("{}/metrics", c.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("herald_bus_connected{{app=\"{app}\"}} 1")),
        "{metrics}"
    );
    drop((b, c));
    drop_schema(db, &herald_server::postgres_schema(&app)).await;
}

/// Removes the app's schema (the nodes are stopped).
async fn drop_schema(db: &str, schema: &str) {
    let (client, conn) = tokio_postgres::connect(db, tokio_postgres::NoTls)
        .await
        .expect("connect to drop the schema");
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .expect("drop the test schema");
}

fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!(
                "SKIPPED: DATABASE_URL not set: the three-node cluster tests need PostgreSQL \
                 (CI sets postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

fn redis_url() -> Option<String> {
    let url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
    if url.is_none() {
        println!("SKIPPED: REDIS_URL not set: the Redis bus variants need Redis");
    }
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_postgres_with_its_own_bus() {
    let Some(db) = database_url() else { return };
    three_nodes(&db, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_postgres_with_a_redis_bus() {
    let Some(db) = database_url() else { return };
    let Some(redis) = redis_url() else { return };
    three_nodes(&db, Some(&redis)).await;
}

// ---------------------------------------------------------------------------
// Under load, one node SIGKILLed at a seeded moment and restarted.

/// The engines' default lease: a run the killed node had claimed fires
/// again within this (and a second) of its due time.
const LEASE_MS: u64 = 10_000;
/// How long the publishers run.
const LOAD_MS: u64 = 3_000;
const PUBLISHERS: usize = 4;
/// What a loaded two-core machine adds to a run's lateness.
const SLACK_MS: u64 = 500;

/// xorshift64*: the test's only randomness, from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Debug)]
enum Kind {
    Now,
    Once { due: u64 },
    Repeat { first: u64, runs: u64 },
}

#[derive(Clone, Debug)]
struct Acked {
    kind: Kind,
    /// When the publish was answered.
    acked_at: u64,
    /// A cancel was answered `cancelled` at this time.
    cancelled_at: Option<u64>,
    /// A cancel was sent but its answer never came (the node it went to
    /// was killed): the store decides whether it was cancelled.
    cancel_unanswered: bool,
}

/// Every run one subscriber received: message id → run timestamps, with
/// the receive times.
type Seen = std::collections::HashMap<String, Vec<(u64, u64)>>;

fn record(seen: &mut Seen, data: &Value, at: u64) {
    let id = data["messageId"].as_str().unwrap_or_default().to_owned();
    let ts = data["timestamp"].as_u64().unwrap_or_default();
    seen.entry(id).or_default().push((ts, at));
}

async fn under_load(db: &str, bus: Option<&str>) {
    let seed = std::env::var("HERALD_CLUSTER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() ^ u64::from(std::process::id()) << 20)
        | 1;
    println!("cluster SIGKILL test: seed {seed} (HERALD_CLUSTER_SEED={seed} replays the choices)");
    let mut rng = Rng(seed);
    // The bus in the name too: the two variants run at once, possibly
    // with the same seed, and must not share a schema or a channel.
    let app = format!(
        "CLUSTERK-{}-{:08x}",
        if bus.is_some() { "REDIS" } else { "PG" },
        rng.next() as u32
    );
    let mut nodes = vec![
        start(db, bus, &app, "a").await,
        start(db, bus, &app, "b").await,
        start(db, bus, &app, "c").await,
    ];
    let victim = rng.below(3) as usize;
    let kill_after = 800 + rng.below(1_400);
    println!("  node {victim} is killed {kill_after} ms into the load");
    let mut subs = Vec::new();
    for n in &nodes {
        subs.push(subscribe(n, &app).await);
    }
    let http = support::http_client();
    let bases: Vec<String> = nodes.iter().map(|n| n.url(&app, "")).collect();
    let start_at = now_ms();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        Acked,
    >::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..PUBLISHERS {
        let (http, bases, acked) = (http.clone(), bases.clone(), acked.clone());
        let mut rng = Rng(seed.wrapping_add(p as u64 * 0x9e37_79b9) | 1);
        tasks.spawn(async move {
            let mut i = 0u64;
            while now_ms() < start_at + LOAD_MS {
                i += 1;
                let node = ((p as u64 + i) % 3) as usize;
                let now = now_ms();
                let (kind, body) = match rng.below(10) {
                    0..=1 => (Kind::Now, json!({"message": {"p": p, "i": i}})),
                    2..=7 => {
                        let due = now + 500 + rng.below(3_500);
                        (
                            Kind::Once { due },
                            json!({"message": {"p": p, "i": i}, "publishAt": due}),
                        )
                    }
                    _ => {
                        let first = now + 500 + rng.below(1_500);
                        (
                            Kind::Repeat { first, runs: 3 },
                            json!({"message": {"p": p, "i": i}, "publishAt": first,
                                   "repeatEvery": 1, "repeatExpiresAt": first + 2_500}),
                        )
                    }
                };
                let url = format!("{}messaging/{CHANNEL}", bases[node]);
                let Ok(res) = http.post(&url).json(&body).send().await else {
                    continue; // the killed node: not acknowledged
                };
                if res.status() != 200 {
                    continue;
                }
                let Ok(st) = res.json::<Value>().await else {
                    continue;
                };
                let id = st["messageId"].as_str().unwrap_or_default().to_owned();
                let cancel = matches!(kind, Kind::Once { due } if due > now_ms() + 1_000)
                    && rng.below(5) == 0;
                acked.lock().unwrap().insert(
                    id.clone(),
                    Acked {
                        kind,
                        acked_at: now_ms(),
                        cancelled_at: None,
                        cancel_unanswered: false,
                    },
                );
                if cancel {
                    // On another node than the publisher's.
                    let other = (node + 1 + rng.below(2) as usize) % 3;
                    let url = format!("{}messaging/{id}", bases[other]);
                    match http.delete(&url).send().await {
                        Ok(res) if res.status() == 200 => {
                            if let Ok(v) = res.json::<Value>().await
                                && v["status"] == "cancelled"
                            {
                                acked.lock().unwrap().get_mut(&id).unwrap().cancelled_at =
                                    Some(now_ms());
                            }
                        }
                        Ok(_) => {}
                        Err(_) => {
                            acked
                                .lock()
                                .unwrap()
                                .get_mut(&id)
                                .unwrap()
                                .cancel_unanswered = true;
                        }
                    }
                }
            }
        });
    }
    // The kill, then the restart.
    tokio::time::sleep_until(
        tokio::time::Instant::now()
            + Duration::from_millis(kill_after.saturating_sub(now_ms() - start_at)),
    )
    .await;
    nodes[victim].child.start_kill().expect("SIGKILL");
    let _ = nodes[victim].child.wait().await;
    let killed_at = now_ms();
    while tasks.join_next().await.is_some() {}
    nodes[victim] = start(db, bus, &app, "restarted").await;
    subs[victim] = subscribe(&nodes[victim], &app).await;
    let restarted_at = now_ms();

    // A cancel whose answer the kill cut off: the stored status says
    // whether it landed (then no run may fire after the kill).
    let unanswered: Vec<String> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, a)| a.cancel_unanswered && a.cancelled_at.is_none())
        .map(|(id, _)| id.clone())
        .collect();
    let survivor_base = nodes[(victim + 1) % 3].url(&app, "");
    for id in &unanswered {
        let st = get(&http, &format!("{survivor_base}messaging/{id}")).await;
        if st["status"] == "cancelled" {
            acked.lock().unwrap().get_mut(id).unwrap().cancelled_at = Some(killed_at);
        }
    }
    println!(
        "  {} cancels unanswered by the killed node",
        unanswered.len()
    );
    // Collect until every expected run reached both survivors, or the
    // last run's due time plus a lease, a second and some slack.
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let last_due = acked
        .values()
        .map(|a| match a.kind {
            Kind::Now => a.acked_at,
            Kind::Once { due } => due,
            Kind::Repeat { first, runs } => first + (runs - 1) * 1_000,
        })
        .max()
        .unwrap_or(killed_at);
    let deadline = last_due.max(killed_at) + LEASE_MS + 1_000 + 3_000;
    let survivors: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    let mut seen: Vec<Seen> = vec![Seen::new(), Seen::new(), Seen::new()];
    let expected_runs = |a: &Acked| match a.kind {
        Kind::Now | Kind::Once { .. } => 1,
        Kind::Repeat { runs, .. } => runs,
    };
    let complete = |seen: &Vec<Seen>| {
        survivors.iter().all(|&s| {
            acked
                .iter()
                .filter(|(_, a)| a.cancelled_at.is_none())
                .all(|(id, a)| {
                    let mut ts: Vec<u64> = seen[s]
                        .get(id)
                        .map(|v| v.iter().map(|r| r.0).collect())
                        .unwrap_or_default();
                    ts.sort_unstable();
                    ts.dedup();
                    ts.len() as u64 >= expected_runs(a)
                })
        })
    };
    while !complete(&seen) && now_ms() < deadline {
        let left = Duration::from_millis(deadline.saturating_sub(now_ms()).max(1));
        let mut progressed = false;
        for (i, rx) in subs.iter_mut().enumerate() {
            while let Ok((data, at)) = rx.try_recv() {
                record(&mut seen[i], &data, at);
                progressed = true;
            }
        }
        if !progressed {
            // Wait for the next run on any subscriber (bounded).
            let (a, rest) = subs.split_at_mut(1);
            let (b, c) = rest.split_at_mut(1);
            tokio::select! {
                Some((d, at)) = a[0].recv() => record(&mut seen[0], &d, at),
                Some((d, at)) = b[0].recv() => record(&mut seen[1], &d, at),
                Some((d, at)) = c[0].recv() => record(&mut seen[2], &d, at),
                () = tokio::time::sleep(left) => {}
            }
        }
    }

    // The checks.
    let mut duplicates = 0usize;
    let mut missing = Vec::new();
    let mut worst = String::new();
    let mut collapsed = 0usize;
    let mut max_late_scheduled = 0u64;
    let mut max_late_any = 0u64;
    for (id, a) in &acked {
        for &s in &survivors {
            let got = seen[s].get(id).cloned().unwrap_or_default();
            if let Some(at) = a.cancelled_at {
                assert!(
                    got.iter().all(|&(_, recv)| recv <= at + 100),
                    "{id} was cancelled at {at} but fired on node {s}: {got:?} ({a:?})"
                );
                continue;
            }
            let mut ts: Vec<u64> = got.iter().map(|r| r.0).collect();
            ts.sort_unstable();
            let distinct = {
                let mut d = ts.clone();
                d.dedup();
                d
            };
            duplicates += ts.len() - distinct.len();
            let want = expected_runs(a);
            let dues: Vec<u64> = match a.kind {
                Kind::Now => vec![a.acked_at],
                Kind::Once { due } => vec![due],
                Kind::Repeat { first, runs } => (0..runs).map(|k| first + k * 1_000).collect(),
            };
            if (distinct.len() as u64) < want {
                // Only a repeat whose run was in flight on the killed node
                // may lose later runs: missed runs collapse into one when
                // its claim comes back after the lease.
                let in_flight_at_kill = dues
                    .iter()
                    .any(|&d| d + 1_000 >= killed_at && d <= killed_at + 100);
                if !(matches!(a.kind, Kind::Repeat { .. })
                    && in_flight_at_kill
                    && !distinct.is_empty())
                {
                    missing.push(format!(
                        "{id} ({a:?}): node {s} saw {} of {want} runs: {got:?}",
                        distinct.len()
                    ));
                    continue;
                }
                collapsed += 1;
            }
            if let Kind::Once { due } = a.kind {
                let first_recv = got.iter().map(|r| r.1).min().unwrap();
                assert!(
                    first_recv + 50 >= due,
                    "{id} fired early on node {s}: {first_recv} < {due}"
                );
                let late = first_recv.saturating_sub(due);
                if late > max_late_any {
                    worst = format!(
                        "{id} due +{} ms: {:?}",
                        due - start_at,
                        (0..3)
                            .map(|i| seen[i]
                                .get(id)
                                .map(|v| v.iter().map(|r| r.1 - due).collect::<Vec<_>>()))
                            .collect::<Vec<_>>()
                    );
                }
                max_late_any = max_late_any.max(late);
                assert!(
                    late <= LEASE_MS + 1_000 + 1_000,
                    "{id} due {due} fired {late} ms late on node {s} (lease {LEASE_MS} ms + 1 s)"
                );
                if due >= killed_at + 1_000 {
                    // Merely scheduled at the kill (claims happen at most
                    // 15 ms before the due time): on time. The killed node may have reserved it
                    // (due within its horizon): a reservation ends a hold
                    // (horizon / 8) after the due time and another node
                    // looks within 1.5 times that (jittered periods); the
                    // rest is this loaded machine's
                    // slack (three servers and the test on two cores).
                    max_late_scheduled = max_late_scheduled.max(late);
                    assert!(
                        late <= HORIZON_MS / 8 + 3 * (HORIZON_MS / 8) / 2 + SLACK_MS,
                        "{id} due {due} (+{} ms, killed at +{} ms, restarted at +{} ms), scheduled at the kill, \
                         fired {late} ms late on node {s}; receive - due on 0/1/2: {:?}",
                        due - start_at,
                        killed_at - start_at,
                        restarted_at - start_at,
                        (0..3)
                            .map(|i| seen[i].get(id).map(|v| v
                                .iter()
                                .map(|r| r.1 as i64 - due as i64)
                                .collect::<Vec<_>>()))
                            .collect::<Vec<_>>()
                    );
                }
            }
        }
    }
    if !missing.is_empty() {
        // What every node says of the first few, for the report.
        let mut report = Vec::new();
        for line in missing.iter().take(5) {
            let id = line.split(' ').next().unwrap_or_default();
            let mut statuses = Vec::new();
            for n in &nodes {
                statuses.push(get(&http, &n.url(&app, &format!("messaging/{id}"))).await);
            }
            let all: Vec<_> = (0..3).map(|i| seen[i].get(id).cloned()).collect();
            report.push(format!(
                "{line}\n    seen by 0/1/2: {all:?}\n    statuses: {statuses:?}"
            ));
        }
        panic!(
            "{} runs missing (victim {victim}, killed at {killed_at}, seed {seed}):\n{}",
            missing.len(),
            report.join("\n")
        );
    }
    // Statuses agree on every live node. A run's completion is recorded
    // after its delivery (and after its frame is on the bus), so the last
    // runs' statuses may still change while they are read: a status that
    // differs is read again, on every node, until they agree or the
    // completions have had a bus wait (5 s) and a lease to land.
    let agree_by = now_ms() + 5_000 + LEASE_MS;
    let mut disagree = Vec::new();
    for (id, a) in acked.iter().take(200) {
        loop {
            let mut answers = Vec::new();
            for n in &nodes {
                let st = get(&http, &n.url(&app, &format!("messaging/{id}"))).await;
                answers.push((st["status"].clone(), st["deliveries"]["runs"].clone()));
            }
            if answers.windows(2).all(|w| w[0] == w[1]) {
                break;
            }
            if now_ms() >= agree_by {
                disagree.push((id.clone(), a.clone(), answers));
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(
        disagree.is_empty(),
        "statuses differ between nodes: {disagree:?}"
    );
    println!(
        "  {} acknowledged ({} cancelled), killed at +{} ms, restarted at +{} ms; \
         duplicates {duplicates}, repeats collapsed by the failover {collapsed}; \
         max lateness {max_late_any} ms (scheduled at the kill: {max_late_scheduled} ms): \
         {worst}",
        acked.len(),
        acked.values().filter(|a| a.cancelled_at.is_some()).count(),
        killed_at - start_at,
        restarted_at - start_at,
    );
    assert!(
        acked.len() > 50,
        "the load ran: {} acknowledged",
        acked.len()
    );
    drop(subs);
    drop(nodes);
    drop_schema(db, &herald_server::postgres_schema(&app)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_nothing_with_the_postgres_bus() {
    let Some(db) = database_url() else { return };
    under_load(&db, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_nothing_with_the_redis_bus() {
    let Some(db) = database_url() else { return };
    let Some(redis) = redis_url() else { return };
    under_load(&db, Some(&redis)).await;
}

/// Two nodes started without an app on one database agree on one
/// development app (recorded in `herald_cluster.dev_app` by whichever
/// starts first), though each has a data directory of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_without_an_app_share_one_development_app() {
    let Some(db) = database_url() else { return };
    let mut pairs = Vec::new();
    for name in ["dev-a", "dev-b"] {
        let (mut id, mut key) = (String::new(), String::new());
        let node = spawn_node(&db, name, &[], |line| {
            if let Some(v) = line.trim().strip_prefix("app id:") {
                id = v.trim().to_owned();
            } else if let Some(v) = line.trim().strip_prefix("API key:") {
                key = v.trim().to_owned();
            }
        })
        .await;
        assert!(
            !id.is_empty() && !key.is_empty(),
            "{name} printed its development app"
        );
        pairs.push((id, key, node));
    }
    assert_eq!(pairs[0].0, pairs[1].0, "one development app id");
    assert_eq!(pairs[0].1, pairs[1].1, "one development API key");
}
