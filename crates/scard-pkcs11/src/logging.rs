//! Logging to the file named by `SCARD_LOG` (nothing is logged without it). The level is
//! `SCARD_LOG_LEVEL` (a `tracing` filter such as `debug` or `info,scard_transport=trace` for
//! the APDUs; default `info`). The module never installs a global subscriber in the
//! application: each entry point runs under the module's own dispatcher. What is logged is
//! redacted as in the CLI: APDU traces blank PINs, keys and authentication data (the
//! transport does it), and the module never logs a PIN or a decrypted value.

use std::sync::{Mutex, OnceLock};

/// The variable naming the log file.
pub const LOG_ENV: &str = "SCARD_LOG";
/// The variable with the log filter.
pub const LEVEL_ENV: &str = "SCARD_LOG_LEVEL";

static DISPATCH: OnceLock<Option<tracing::Dispatch>> = OnceLock::new();

/// The module's dispatcher, made on first use (`None`: no `SCARD_LOG`, or the file cannot be
/// opened).
pub(crate) fn dispatch() -> Option<&'static tracing::Dispatch> {
    DISPATCH.get_or_init(make).as_ref()
}

fn make() -> Option<tracing::Dispatch> {
    let path = std::env::var_os(LOG_ENV).filter(|p| !p.is_empty())?;
    let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).ok()?;
    let filter = std::env::var(LEVEL_ENV).ok().filter(|s| !s.trim().is_empty());
    let filter = tracing_subscriber::EnvFilter::new(filter.as_deref().unwrap_or("info"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .with_thread_ids(true)
        .finish();
    Some(tracing::Dispatch::new(subscriber))
}

/// Runs `f` with the module's logging (when `SCARD_LOG` is set).
pub(crate) fn with_logging<R>(f: impl FnOnce() -> R) -> R {
    match dispatch() {
        Some(d) => tracing::dispatcher::with_default(d, f),
        None => f(),
    }
}
