//! Shared helpers for the tests against a real Redis: the server's URL
//! from `REDIS_URL` (or one loud `SKIPPED:` line per test binary), fresh
//! channel names, and a plain connection for inspecting the server.
#![allow(dead_code)] // each test file uses a different subset

use std::hash::{BuildHasher, RandomState};
use std::io::Write;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use herald_redis::RedisBus;

/// `REDIS_URL`, or `None` after saying (once per test binary, on stderr,
/// which the harness does not capture) that the tests are skipped.
pub(crate) fn redis_url() -> Option<String> {
    static SKIPPED: Once = Once::new();
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            SKIPPED.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: REDIS_URL not set (e.g. REDIS_URL=redis://127.0.0.1:6379): the herald-redis tests need a Redis server"
                );
            });
            None
        }
    }
}

/// A channel name no other test uses: `herald-test:{what}:{random}`.
pub(crate) fn fresh_channel(what: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let random = RandomState::new().hash_one((seq, std::process::id()));
    format!("herald-test:{what}:{random:016x}")
}

/// A bus on `channel`, which must connect.
pub(crate) async fn bus(url: &str, channel: &str) -> RedisBus {
    RedisBus::connect(url, channel)
        .await
        .unwrap_or_else(|e| panic!("REDIS_URL is set ({url}), but: {e}"))
}

/// A plain connection, for commands the tests send themselves.
pub(crate) async fn admin(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("a valid REDIS_URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to REDIS_URL")
}

/// A Redis user of its own, so a test can kill exactly its own
/// connections (`CLIENT KILL USER`) while other tests run on the same
/// server. [`User::delete`] removes it; a test that panics leaves it
/// behind, harmlessly (its name is random, it is on no URL).
pub(crate) struct User {
    pub(crate) name: String,
    pub(crate) url: String,
}

impl User {
    /// Creates the user, with every command and channel allowed, and its
    /// URL (`REDIS_URL` with the user's credentials).
    pub(crate) async fn create(
        admin: &mut redis::aio::MultiplexedConnection,
        url: &str,
        what: &str,
    ) -> Self {
        let name = fresh_channel(what).replace(':', "-");
        let password = format!("pw{}", RandomState::new().hash_one(&name));
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&name)
            .arg("on")
            .arg(format!(">{password}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .query_async(admin)
            .await
            .expect("ACL SETUSER (the tests need the default user's rights)");
        let rest = url
            .strip_prefix("redis://")
            .expect("REDIS_URL starts with redis://");
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        Self {
            url: format!("redis://{name}:{password}@{host}"),
            name,
        }
    }

    /// Kills this user's connections of `kind` (`pubsub` or `normal`) and
    /// returns how many were killed.
    pub(crate) async fn kill(
        &self,
        admin: &mut redis::aio::MultiplexedConnection,
        kind: &str,
    ) -> u64 {
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("USER")
            .arg(&self.name)
            .arg("TYPE")
            .arg(kind)
            .query_async(admin)
            .await
            .expect("CLIENT KILL")
    }

    /// Enables or disables the user: a disabled user's new connections
    /// are refused (existing ones live on).
    pub(crate) async fn enable(&self, admin: &mut redis::aio::MultiplexedConnection, on: bool) {
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&self.name)
            .arg(if on { "on" } else { "off" })
            .query_async(admin)
            .await
            .expect("ACL SETUSER on/off");
    }

    /// How many times the server refused this user a login (from `ACL
    /// LOG`, which merges repeats of one failure into one entry with a
    /// count).
    pub(crate) async fn refused_logins(
        &self,
        admin: &mut redis::aio::MultiplexedConnection,
    ) -> u64 {
        let entries: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("ACL")
            .arg("LOG")
            .arg(1000)
            .query_async(admin)
            .await
            .expect("ACL LOG");
        entries
            .iter()
            .filter(|e| {
                matches!(e.get("reason"), Some(redis::Value::BulkString(r)) if r == b"auth")
                    && matches!(e.get("username"), Some(redis::Value::BulkString(u)) if u == self.name.as_bytes())
            })
            .map(|e| match e.get("count") {
                Some(redis::Value::Int(n)) => *n as u64,
                _ => 1,
            })
            .sum()
    }

    /// Deletes the user (Redis closes its connections).
    pub(crate) async fn delete(self, admin: &mut redis::aio::MultiplexedConnection) {
        let _: u64 = redis::cmd("ACL")
            .arg("DELUSER")
            .arg(&self.name)
            .query_async(admin)
            .await
            .expect("ACL DELUSER");
    }
}
