//! `rt-floor`: what the real-time fan-out would cost with a WebSocket
//! layer of our own, where one task serves many connections: the floor
//! under `server-bench`'s `rt_fanout_10k_ms` and `rt_conn_bytes`.
//!
//! ```text
//! cargo build --release -p herald-benches --bin rt-floor --bin rt-clients
//! target/release/rt-floor [--n 10000] [--rounds 10] [--groups 2]
//! ```
//!
//! The server here speaks just enough Engine.IO 4 / socket.io over a
//! WebSocket for `rt-clients` (the same clients `server-bench` measures
//! the real server with): the upgrade, the open packet, the namespace
//! connection, `SUB_ON` → `SUB_READY`, pongs. It is not a server: no
//! authentication, no polling transport, no heartbeats sent, no
//! back-pressure beyond a per-connection queue of unwritten bytes. What it
//! does do is the delivery path such a layer would have:
//!
//! * each subscription joins one of `--groups` subscription groups (an
//!   [`Inbox`] fed by many subscriptions, `Engine::subscribe_to`), each
//!   drained by **one task** with `Inbox::recv_batch` (a run once with all
//!   its subscriptions);
//! * that task serializes the run's data **once**, and for each
//!   subscription splices the listener's id into a frame and writes it to
//!   the connection's socket with a non-blocking `try_write` (bytes the
//!   socket does not take wait in the connection's queue, flushed by a
//!   task started for it);
//! * each connection keeps one small reader task (the client's frames:
//!   `SUB_ON`, pongs), with a 512-byte read buffer.
//!
//! Measured as in `server-bench`: the resident memory per idle subscribed
//! connection, and per round the time from the publish call to the last
//! subscriber having the message (every connection checks it got every
//! round once, in order). The last line:
//! `rt_floor rt_floor_fanout_ms=… rt_floor_conn_bytes=… n=…`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use clap::Parser;
use herald::{
    DeliveryOptions, Engine, Inbox, InboxBatchItem, InboxLimits, Membership, PublishOptions,
    SubscriptionId,
};
use herald_benches::durable::{loadavg, process_cpu, rss_bytes, wall_us};
use herald_benches::rt_clients::Clients;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

const APP: &str = "FLOOR-APP";
const KEY: &str = "FLOOR-KEY";
const CHANNEL: &str = "rt";
/// The client's read buffer size, as the real server's (`WS_READ_BUFFER`).
const READ_BUFFER: usize = 512;

#[derive(Parser)]
#[command(name = "rt-floor")]
struct Args {
    /// Real-time subscribers (in the `rt-clients` process)
    #[arg(long, default_value = "10000")]
    n: usize,
    /// Publishes, one at a time
    #[arg(long, default_value = "10")]
    rounds: usize,
    /// Subscription groups, each drained by one task
    #[arg(long, default_value = "2")]
    groups: usize,
    /// Worker threads of the `rt-clients` process
    #[arg(long, default_value = "2")]
    client_threads: usize,
}

/// One WebSocket connection's writing side.
struct Conn {
    stream: Arc<TcpStream>,
    /// Bytes the socket did not take yet, written by a flush task.
    queued: Mutex<Vec<u8>>,
    /// A flush task is running (it empties `queued`).
    flushing: AtomicBool,
}

impl Conn {
    /// Writes `frame` now if the socket takes it, else queues the rest.
    fn send(self: &Arc<Self>, frame: &[u8]) {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        if !queued.is_empty() {
            queued.extend_from_slice(frame);
            return;
        }
        let written = match self.stream.try_write(frame) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(_) => return, // gone: its reader ends it
        };
        if written < frame.len() {
            queued.extend_from_slice(&frame[written..]);
            if !self.flushing.swap(true, Ordering::AcqRel) {
                let conn = self.clone();
                tokio::spawn(async move { conn.flush().await });
            }
        }
    }

    async fn flush(self: Arc<Self>) {
        loop {
            if self.stream.writable().await.is_err() {
                return;
            }
            let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
            match self.stream.try_write(&queued) {
                Ok(n) => {
                    queued.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
            if queued.is_empty() {
                self.flushing.store(false, Ordering::Release);
                return;
            }
        }
    }
}

/// A listener: where its runs go, with the client's id for it.
struct Listener {
    conn: Arc<Conn>,
    id: String,
    _membership: Membership,
}

type Listeners = Arc<Mutex<HashMap<SubscriptionId, Listener>>>;

/// A server-to-client text frame (unmasked) holding `parts` in order.
fn text_frame(out: &mut Vec<u8>, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.clear();
    out.push(0x81);
    match len {
        n if n < 126 => out.push(n as u8),
        n if n < 65_536 => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// One client frame from `buf` (masked, as clients must): its opcode and
/// unmasked payload, and how many bytes it took.
fn client_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let (len, mut off) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        126 | 127 => return None, // clients here send small frames only
        n => (usize::from(n), 2),
    };
    let mask: [u8; 4] = buf.get(off..off + 4)?.try_into().ok()?;
    off += 4;
    let payload = buf.get(off..off + len)?;
    let payload = payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    Some((buf[0] & 0x0f, payload, off + len))
}

/// One connection: the upgrade, then its frames until it closes.
async fn serve(
    stream: TcpStream,
    sid: u64,
    engine: Engine,
    group: Inbox,
    listeners: Listeners,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let stream = Arc::new(stream);
    let mut buf = Vec::with_capacity(READ_BUFFER);
    // The upgrade request.
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read_some(&stream, &mut buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end);
    let key = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        })
        .ok_or("no Sec-WebSocket-Key")?;
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    let conn = Arc::new(Conn {
        stream: stream.clone(),
        queued: Mutex::new(Vec::new()),
        flushing: AtomicBool::new(false),
    });
    let mut frame = response.into_bytes();
    conn.send(&frame);
    let open = format!(
        "0{{\"sid\":\"{sid}\",\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":20000,\
         \"maxPayload\":1000000}}"
    );
    text_frame(&mut frame, &[open.as_bytes()]);
    conn.send(&frame);
    let nsp = format!("/{APP}");
    let event_prefix = format!("42{nsp},");
    let mut mine: Vec<SubscriptionId> = Vec::new();
    let result = loop {
        while let Some((opcode, payload, used)) = client_frame(&buf) {
            buf.drain(..used);
            if opcode == 0x8 {
                break;
            }
            let text = String::from_utf8_lossy(&payload);
            if text.starts_with(&format!("40{nsp}")) {
                let answer = format!("40{nsp},{{\"sid\":\"n{sid}\"}}");
                text_frame(&mut frame, &[answer.as_bytes()]);
                conn.send(&frame);
            } else if let Some(json) = text.strip_prefix(&event_prefix) {
                let v: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
                if v[0] != "SUB_ON" {
                    continue;
                }
                let id = v[1]["id"].as_str().unwrap_or_default().to_owned();
                let channel = v[1]["options"]["channel"].as_str().unwrap_or(CHANNEL);
                let membership = engine
                    .subscribe_to(&group, channel, None)
                    .map_err(|e| e.to_string())?;
                mine.push(membership.id());
                let ready = format!(
                    "42{nsp},[\"SUB_READY\",{{\"id\":{}}}]",
                    Value::from(id.clone())
                );
                listeners.lock().unwrap_or_else(|e| e.into_inner()).insert(
                    membership.id(),
                    Listener {
                        conn: conn.clone(),
                        id,
                        _membership: membership,
                    },
                );
                text_frame(&mut frame, &[ready.as_bytes()]);
                conn.send(&frame);
            }
            // "3" (a pong) and anything else: nothing to do.
        }
        match read_some(&stream, &mut buf).await {
            Ok(()) => {}
            Err(e) => break Err(e),
        }
    };
    let mut all = listeners.lock().unwrap_or_else(|e| e.into_inner());
    for id in mine {
        all.remove(&id);
    }
    match result {
        Err(e) if e == "closed" => Ok(()),
        other => other,
    }
}

/// Reads what the socket has into `buf` (at most its spare capacity, so the
/// buffer stays at [`READ_BUFFER`] unless a frame needs more).
async fn read_some(stream: &TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    if buf.capacity() == buf.len() {
        buf.reserve(READ_BUFFER);
    }
    loop {
        stream.readable().await.map_err(|e| e.to_string())?;
        let mut chunk = [0u8; READ_BUFFER];
        match stream.try_read(&mut chunk) {
            Ok(0) => return Err("closed".into()),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// A group's one task: each run once, a frame per listener.
async fn fan_out(group: Inbox, listeners: Listeners, delivered: Arc<AtomicU64>) {
    let mut batch = Vec::new();
    let mut frame = Vec::new();
    let prefix = format!("42/{APP},[\"SUB_RES\",{{\"id\":");
    loop {
        batch.clear();
        if group.recv_batch(&mut batch, usize::MAX).await == 0 {
            return;
        }
        let all = listeners.lock().unwrap_or_else(|e| e.into_inner());
        for item in &batch {
            let InboxBatchItem::Message {
                subscriptions,
                message,
            } = item
            else {
                continue;
            };
            // The run's data, serialized once for every listener.
            let data = format!(
                ",\"data\":{{\"message\":{},\"messageId\":\"{}\"}}}}]",
                message.message().get(),
                message.message_id()
            );
            for sub in subscriptions {
                let Some(l) = all.get(sub) else { continue };
                let id = Value::from(l.id.as_str()).to_string();
                text_frame(
                    &mut frame,
                    &[prefix.as_bytes(), id.as_bytes(), data.as_bytes()],
                );
                l.conn.send(&frame);
            }
            delivered.fetch_add(subscriptions.len() as u64, Ordering::Relaxed);
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; run with --release for meaningful numbers");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("!! rt-floor: WRONG RESULT: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let n = args.n;
    let engine = Engine::builder().build();
    let delivered = Arc::new(AtomicU64::new(0));
    // Each group with its listeners (subscription ids are per inbox).
    let groups: Vec<(Inbox, Listeners)> = (0..args.groups.max(1))
        .map(|_| {
            let inbox = Inbox::new(InboxLimits {
                max_subscriptions: n,
                ..InboxLimits::messages(1 << 20)
            });
            (inbox, Arc::new(Mutex::new(HashMap::new())))
        })
        .collect();
    for (g, listeners) in &groups {
        tokio::spawn(fan_out(g.clone(), listeners.clone(), delivered.clone()));
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    {
        let (engine, groups) = (engine.clone(), groups.clone());
        tokio::spawn(async move {
            let mut sid = 0u64;
            while let Ok((stream, _)) = listener.accept().await {
                sid += 1;
                let (group, listeners) = groups[sid as usize % groups.len()].clone();
                let engine = engine.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, sid, engine, group, listeners).await {
                        eprintln!("connection {sid}: {e}");
                    }
                });
            }
        });
    }
    println!(
        "rt-floor: {n} subscribers (rt-clients process, {} thread(s)) in {} group(s), one task \
         each; load average at start {}",
        args.client_threads,
        groups.len(),
        loadavg()
    );
    let rss0 = rss_bytes();
    let clients = tokio::task::block_in_place(|| {
        Clients::spawn(addr, APP, KEY, CHANNEL, n, args.client_threads)
    })?;
    let ready = tokio::task::block_in_place(|| clients.expect("ready"))?;
    let rss1 = rss_bytes();
    let conn_bytes = rss1.saturating_sub(rss0) as f64 / n as f64;
    println!(
        "## connected and subscribed in {} ms; RSS {:.1} -> {:.1} MB = {conn_bytes:.0} B per idle \
         connection",
        ready.get(1).map_or("?", String::as_str),
        rss0 as f64 / 1e6,
        rss1 as f64 / 1e6
    );
    let mut ms = Vec::new();
    let cpu0 = process_cpu();
    for round in 0..args.rounds {
        let sent = wall_us();
        let data: Value = serde_json::json!({ "rt": round });
        engine
            .publish(
                CHANNEL,
                data.into(),
                PublishOptions::default(),
                DeliveryOptions::default(),
            )
            .await
            .map_err(|e| format!("publish: {e}"))?;
        let (first, last) = tokio::task::block_in_place(|| clients.expect_round(round))?;
        let to_ms = |us: i64| (us - sent) as f64 / 1e3;
        println!(
            "   round {round}: first subscriber {:.2} ms, last {:.2} ms",
            to_ms(first),
            to_ms(last)
        );
        ms.push(to_ms(last));
    }
    let cpu = process_cpu().saturating_sub(cpu0);
    tokio::task::block_in_place(|| clients.finish(n, args.rounds))?;
    let want = (n * args.rounds) as u64;
    let got = delivered.load(Ordering::Relaxed);
    if got != want {
        return Err(format!("{got} deliveries written, wanted {want}"));
    }
    ms.sort_by(f64::total_cmp);
    let median = ms.get(ms.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "## fan-out: 1 publish to {n} subscribers, {} rounds (checked by every client): last \
         subscriber median {median:.2} ms, max {:.2} ms; server CPU {:.1} µs per delivery (load \
         average {})",
        ms.len(),
        ms.last().copied().unwrap_or(f64::NAN),
        cpu.as_secs_f64() * 1e6 / want as f64,
        loadavg()
    );
    println!();
    println!("rt_floor rt_floor_fanout_ms={median:.2} rt_floor_conn_bytes={conn_bytes:.0} n={n}");
    engine.shutdown().await;
    Ok(())
}
