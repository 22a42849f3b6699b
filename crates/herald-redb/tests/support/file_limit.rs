//! The real-outage harness the `*_outage.rs` tests share: the store's file
//! cannot be written because the process's file-size limit
//! (`RLIMIT_FSIZE`) is lowered to 0 with `prlimit`, so every write fails
//! with `EFBIG`, as on a full disk. A write past the limit raises SIGXFSZ,
//! which kills unless ignored; so each test runs its scenario in a child
//! process (its own binary, running the ignored test `outage_child` alone)
//! started through `sh` with SIGXFSZ ignored.
#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

use herald::StoreError;

/// How long the store may take to write again once the limit is back
/// (its backoff is at most 5 s).
pub(crate) const BACK_WITHIN: Duration = Duration::from_secs(30);

/// Runs this test binary's ignored test `outage_child` alone, in a child
/// started through `sh` with SIGXFSZ ignored, and checks it passed.
pub(crate) fn run_child() {
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; exec \"$0\" \"$@\"")
        .arg(exe)
        .args(["outage_child", "--exact", "--ignored", "--nocapture"])
        .output()
        .expect("spawn the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("test outage_child ... ok") && stdout.contains("1 passed"),
        "the child ran the scenario:\n{stdout}"
    );
}

/// Whether this process ignores SIGXFSZ (`SigIgn` in /proc/self/status).
pub(crate) fn xfsz_ignored() -> bool {
    const SIGXFSZ: u32 = 25;
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (SIGXFSZ - 1)) != 0)
}

/// `prlimit` (util-linux) on this process: the soft file-size limit.
pub(crate) fn prlimit(args: &[&str]) -> String {
    let out = Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .args(args)
        .output()
        .expect("prlimit (util-linux) runs");
    assert!(
        out.status.success(),
        "prlimit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub(crate) fn unavailable<T: std::fmt::Debug>(what: &str, r: Result<T, StoreError>) {
    match r {
        Err(StoreError::Unavailable(e)) => {
            assert!(e.to_string().starts_with("herald-redb: "), "{what}: {e}")
        }
        other => panic!("{what}: {other:?}, not Unavailable"),
    }
}
