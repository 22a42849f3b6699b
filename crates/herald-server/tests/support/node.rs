//! node and the npm packages of `compat/js-sdk`, for the tests that run
//! JavaScript (`js_sdk.rs`: the SDK under node; `browser.rs`: in Chromium).
//!
//! [`packages`] installs the packages itself (`npm ci`) when they are
//! missing or not at their locked versions, so `cargo test` runs these
//! tests wherever node and npm are. Without node a test is skipped with one
//! loud `SKIPPED:` line ([`skip`]), except when `CI` is set: there it
//! fails.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/herald-server is two levels below the repository root")
        .to_path_buf()
}

/// `compat/js-sdk`.
pub fn js_dir() -> PathBuf {
    repo_root().join("compat/js-sdk")
}

/// `program --version`, if it runs.
pub fn version(program: &str) -> Option<String> {
    let out = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Makes sure `compat/js-sdk/node_modules` holds every package of
/// `package.json` at the version `package-lock.json` locks, running
/// `npm ci` when it does not (one test binary at a time: a file lock).
///
/// `Err(why)` when node or npm is missing (the caller skips).
///
/// # Panics
///
/// When `npm ci` fails: node is there, so the test must run.
pub fn packages() -> Result<(), String> {
    let Some(node) = version("node") else {
        return Err("`node` is not installed (or not on PATH)".into());
    };
    let dir = js_dir();
    if missing_packages(&dir).is_empty() {
        return Ok(());
    }
    if version("npm").is_none() {
        return Err(format!(
            "node {node} is there but `npm` is not, and {} lacks {:?}",
            dir.join("node_modules").display(),
            missing_packages(&dir)
        ));
    }
    // Concurrent test binaries (nextest) must not run `npm ci` at once: it
    // deletes node_modules first.
    let lock = File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join("npm-ci.lock"))
        .expect("create the npm lock file");
    lock.lock().expect("lock the npm lock file");
    let missing = missing_packages(&dir);
    if missing.is_empty() {
        return Ok(());
    }
    let _ = writeln!(
        std::io::stderr(),
        "npm ci --prefix {}: {missing:?} missing or not at the locked version",
        dir.display()
    );
    let out = Command::new("npm")
        .args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("run npm");
    assert!(
        out.status.success(),
        "`npm ci --prefix {}` failed ({}): node is installed, so the JS tests must run \
         (offline? run it once with network access).\n--- stdout\n{}--- stderr\n{}",
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let still = missing_packages(&dir);
    assert!(still.is_empty(), "after npm ci, still missing: {still:?}");
    Ok(())
}

/// The packages of `package.json` that `node_modules` lacks, or holds at
/// another version than `package-lock.json`'s.
fn missing_packages(dir: &Path) -> Vec<String> {
    let read = |path: PathBuf| -> Option<Value> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    };
    let lock = read(dir.join("package-lock.json")).expect("compat/js-sdk/package-lock.json");
    let manifest = read(dir.join("package.json")).expect("compat/js-sdk/package.json");
    let names = ["dependencies", "devDependencies"]
        .iter()
        .filter_map(|k| manifest[k].as_object())
        .flat_map(|deps| deps.keys().cloned());
    names
        .filter(|name| {
            let locked = &lock["packages"][format!("node_modules/{name}")]["version"];
            let installed = read(dir.join("node_modules").join(name).join("package.json"));
            locked.is_null() || installed.is_none_or(|p| p["version"] != *locked)
        })
        .collect()
}

/// Skips the test `test` because of `why`: one `SKIPPED:` line on stderr
/// (which the test harness does not capture).
///
/// # Panics
///
/// When `CI` is set: CI must run it.
pub fn skip(test: &str, why: &str, fix: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set, so the {test} test must run, but {why}: {fix}"
    );
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}: {fix}");
}

/// [`packages`] (on a blocking thread), or the test `test` [`skip`]ped:
/// false when it must return now. `fix` tells how to run it.
pub async fn ready_or_skip(test: &str, fix: &str) -> bool {
    let ready = tokio::task::spawn_blocking(packages)
        .await
        .expect("npm check");
    match ready {
        Ok(()) => true,
        Err(why) => {
            skip(test, &why, fix);
            false
        }
    }
}
