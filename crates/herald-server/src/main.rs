//! `herald-server`: see `herald-server --help`.

use std::process::ExitCode;

use std::sync::Arc;

use herald::{Clock, SystemClock};
use herald_server::config::LogFormat;
use herald_server::{
    Cli, Config, ensure_dev_app, open_stores, serve_opened, share_dev_app, shutdown_signal,
};
use tracing::info;
use tracing_subscriber::filter::LevelFilter;

fn main() -> ExitCode {
    let cli = match Config::from_args(std::env::args_os().skip(1), |k| std::env::var(k).ok()) {
        Ok(cli) => cli,
        Err(e) => {
            match e.downcast_ref::<clap::Error>() {
                // clap's own text: the problem, the usage, and a pointer to --help.
                Some(usage) => eprint!("{usage}"),
                None => eprintln!("herald-server: {e:#}\n\nFor more information, try '--help'."),
            }
            return ExitCode::from(2);
        }
    };
    let mut config = match cli {
        Cli::Print(text) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Cli::Run(config) => *config,
    };
    init_tracing(config.log.into(), config.log_format);
    herald_server::raise_fd_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&mut config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: &mut Config) -> anyhow::Result<()> {
    if let Some(dev) = ensure_dev_app(config)? {
        let dev = share_dev_app(config, dev).await?;
        let how = if dev.created { "created" } else { "loaded" };
        let kept = match &config.store {
            herald_server::config::StoreLocation::Postgres(url) => {
                format!("{url}, schema {}", herald_postgres::CLUSTER_SCHEMA)
            }
            herald_server::config::StoreLocation::Redb => config
                .data_dir
                .join(herald_server::config::DEV_APP_FILE)
                .display()
                .to_string(),
        };
        println!("No app configured: using the development app ({how}, kept in {kept}).");
        println!("  app id:  {}", dev.id);
        println!("  API key: {}", dev.key);
    }
    // Every store first: a data directory in use fails here, before this
    // process binds or says it listens.
    config.validate()?;
    herald_server::check_tls(config)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let stores = open_stores(config, &clock).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    // The signal handlers are in place before anyone hears we listen.
    let shutdown = shutdown_signal();
    println!("herald-server listening on {scheme}://{addr}");
    info!(%addr, data_dir = %config.data_dir.display(), apps = config.apps.len(), "listening");
    serve_opened(config.clone(), stores, listener, shutdown, clock).await
}

/// Logs to stderr at the configured level (`--log`, `HERALD_LOG`, `log`),
/// as text lines or one JSON object per line (`--log-format json`).
fn init_tracing(level: LevelFilter, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
