//! The `rt-clients` child process seen from a bench binary: N real-time
//! subscribers in a process of their own (see `rt-clients`), driven
//! through its stdin and stdout lines.

use std::net::SocketAddr;
use std::time::Duration;

/// How long one step of the `rt-clients` process may take.
pub const RT_STEP: Duration = Duration::from_secs(120);

/// The `rt-clients` process: its stdin (closing it ends the run) and its
/// stdout lines (read by a thread, so that waits can time out).
#[derive(Debug)]
pub struct Clients {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Clients {
    /// Starts `rt-clients` (next to the running binary) with `n`
    /// subscribers of `channel` on `addr`, the socket.io app `app` with
    /// API key `key`, on `threads` worker threads.
    ///
    /// # Errors
    ///
    /// The binary is missing or cannot be started.
    pub fn spawn(
        addr: SocketAddr,
        app: &str,
        key: &str,
        channel: &str,
        n: usize,
        threads: usize,
    ) -> Result<Self, String> {
        let exe = std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name(format!("rt-clients{}", std::env::consts::EXE_SUFFIX));
        if !exe.exists() {
            return Err(format!(
                "{} is missing: build it with `cargo build --release -p herald-benches --bin \
                 rt-clients`",
                exe.display()
            ));
        }
        let mut child = std::process::Command::new(&exe)
            .args(["--addr", &addr.to_string(), "--app", app, "--key", key])
            .args(["--channel", channel, "--n", &n.to_string()])
            .args(["--threads", &threads.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", exe.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            lines,
        })
    }

    /// The next line, which must start with `word`: its other fields.
    ///
    /// # Errors
    ///
    /// Another line, or none within [`RT_STEP`].
    pub fn expect(&self, word: &str) -> Result<Vec<String>, String> {
        let line = self
            .lines
            .recv_timeout(RT_STEP)
            .map_err(|e| format!("rt-clients said nothing for {RT_STEP:?} ({e}), wanted {word}"))?;
        let mut fields = line.split_whitespace().map(str::to_owned);
        if fields.next().as_deref() != Some(word) {
            return Err(format!("rt-clients: {line} (wanted {word})"));
        }
        Ok(fields.collect())
    }

    /// The clients' `round R FIRST LAST` line for round `round`: when the
    /// first and the last subscriber had it, in µs since the epoch (the
    /// wall clock both processes read).
    ///
    /// # Errors
    ///
    /// Another line, another round, or none within [`RT_STEP`].
    pub fn expect_round(&self, round: usize) -> Result<(i64, i64), String> {
        let got = self.expect("round")?;
        let field = |i: usize| got.get(i).and_then(|f| f.parse::<i64>().ok());
        let (Some(r), Some(first), Some(last)) = (field(0), field(1), field(2)) else {
            return Err(format!("rt-clients: round {got:?}"));
        };
        if usize::try_from(r).ok() != Some(round) {
            return Err(format!("rt-clients reported round {r}, wanted {round}"));
        }
        Ok((first, last))
    }

    /// Closes stdin and waits for `ok N ROUNDS` and a clean exit.
    ///
    /// # Errors
    ///
    /// The clients report an error, other counts, or exit unsuccessfully.
    pub fn finish(mut self, n: usize, rounds: usize) -> Result<(), String> {
        drop(self.stdin.take());
        let ok = self.expect("ok")?;
        if ok != [n.to_string(), rounds.to_string()] {
            return Err(format!(
                "rt-clients: ok {ok:?}, wanted {n} connections, {rounds} rounds"
            ));
        }
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("rt-clients: {status}"));
        }
        Ok(())
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        // On an early return: do not leave 10k connections behind.
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
