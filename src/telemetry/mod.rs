//! Logging: slog drains writing per-domain JSON-lines files with size rotation, an
//! `errors.log` copy of every error, masked secrets and a human-readable stderr.
//!
//! Entry points:
//! - [`init`] builds the root logger from [`LogSettings`] and a [`SecretMask`]; keep the
//!   returned [`TelemetryGuard`] alive until shutdown and drop it last: dropping it
//!   flushes every queued record and closes the files.
//! - [`domain_logger`] derives the logger of a [`LogDomain`] (it sets [`DOMAIN_KEY`]);
//!   components add their own context on top, e.g.
//!   `domain_logger(&root, LogDomain::Trading).new(o!("component" => "execution",
//!   "account_id" => id))`.
//! - [`parse_level`] reads a configured level; [`discard`] is a logger that writes nothing.
//!
//! Files, in `LogSettings::dir`: `app.log`, `trading.log`, `market_data.log`, `llm.log`,
//! `errors.log`. Routing: a record goes to the file of its `domain` key-value (`app` when
//! it has none or an unknown one) if its level is at or above `LogSettings::level`, and
//! every Error or Critical record from any domain also goes to `errors.log` (whatever
//! the configured level). Stderr gets what the domain files get.
//!
//! Line shape (one JSON object per line, one `write` per line):
//! `{"ts":"2025-01-31T12:00:00.123Z","level":"INFO","msg":"order placed","domain":"trading",
//! "component":"execution","account_id":"acc-1","cycle_id":"...",...}`: `ts` is the time
//! the record was logged (RFC 3339, UTC, milliseconds), `level` is slog's long name
//! (`TRACE`, `DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`), `domain` is the file the
//! line belongs to, then every key-value of the record and of its loggers (the record's
//! and the newest logger's value win when a key repeats; a key named `ts`, `level` or
//! `msg` is written as `kv_ts`, ...). Numbers and booleans stay JSON numbers and booleans;
//! everything else is a string.
//!
//! Invariants:
//! - Nothing reaches a file or stderr unmasked: every key and value is masked before the
//!   line is encoded and the whole line is masked again (see [`mask`]); a value under a
//!   sensitive key (`api_key`, `secret`, `signature`, ...) is replaced whole.
//! - Every line of every file, backups included, is one complete JSON object: a line is
//!   written with one `write_all`, and rotation happens only between records
//!   (see [`rotate`]). A file holds at most `rotate_bytes` plus one record; at most
//!   `keep` backups (`<name>.1` newest) exist.
//! - Logging never waits for the disk: records go through a bounded `slog-async`
//!   channel ([`CHANNEL_RECORDS`] records) to one logging thread. When the channel is
//!   full the caller blocks (`OverflowStrategy::Block`) rather than losing records: a
//!   full channel means the disk cannot keep up, and a trading daemon that silently lost
//!   its error lines would be worse than one that slows down. Records below the
//!   configured level are dropped on the caller's thread before the channel.
//! - A file that cannot be written is reported once on stderr, and every later record
//!   retries it; logging never panics and never stops the daemon.

pub mod mask;
pub mod rotate;

mod drain;

pub use mask::SecretMask;

use drain::{Files, Front, Router};
use rotate::RotatingFile;
use slog::{o, Level, Logger};
use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;

/// The key-value that routes a record to a domain file (`"domain" => "trading"`).
pub const DOMAIN_KEY: &str = "domain";

/// File name of the copy of every Error and Critical record.
pub const ERRORS_FILE: &str = "errors.log";

/// Records the async channel holds before a logging caller blocks.
pub const CHANNEL_RECORDS: usize = 16_384;

/// The part of the daemon a record is about; each domain has its own file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogDomain {
    /// Boot, configuration, supervision, HTTP API: everything else (`app.log`).
    App,
    /// Decisions, risk checks, orders, fills, positions (`trading.log`).
    Trading,
    /// Exchange market data: candles, tickers, funding (`market_data.log`).
    MarketData,
    /// Model requests and responses (`llm.log`).
    Llm,
}

impl LogDomain {
    /// Every domain, in file order.
    pub const ALL: [LogDomain; 4] = [
        LogDomain::App,
        LogDomain::Trading,
        LogDomain::MarketData,
        LogDomain::Llm,
    ];

    /// The value of [`DOMAIN_KEY`] for this domain (`"market_data"`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogDomain::App => "app",
            LogDomain::Trading => "trading",
            LogDomain::MarketData => "market_data",
            LogDomain::Llm => "llm",
        }
    }

    /// The file this domain's records go to (`"market_data.log"`).
    pub fn file_name(self) -> &'static str {
        match self {
            LogDomain::App => "app.log",
            LogDomain::Trading => "trading.log",
            LogDomain::MarketData => "market_data.log",
            LogDomain::Llm => "llm.log",
        }
    }

    /// The domain named by a [`DOMAIN_KEY`] value, if it is one.
    pub fn parse(value: &str) -> Option<LogDomain> {
        LogDomain::ALL.into_iter().find(|d| d.as_str() == value)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for LogDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where and how much to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Directory of the log files; created if missing.
    pub dir: PathBuf,
    /// Least severe level written to the domain files and stderr.
    pub level: Level,
    /// Also write human-readable lines to stderr.
    pub stderr: bool,
    /// A file is rotated once it reaches this many bytes.
    pub rotate_bytes: u64,
    /// Rotated backups kept per file (`<name>.1` .. `<name>.<keep>`).
    pub keep: usize,
}

impl LogSettings {
    /// Production defaults: 100 MB per file, 10 backups, stderr on.
    pub fn new(dir: impl Into<PathBuf>, level: Level) -> Self {
        LogSettings {
            dir: dir.into(),
            level,
            stderr: true,
            rotate_bytes: 100 * 1024 * 1024,
            keep: 10,
        }
    }
}

/// The logging stack: the root logger and the guard that flushes it.
pub struct Telemetry {
    /// The root logger; derive per-domain loggers with [`domain_logger`].
    pub root: Logger,
    /// Flushes and closes the log files when dropped; drop it last, at shutdown.
    pub guard: TelemetryGuard,
}

/// Flushes every queued record and closes the files when dropped (it joins the logging
/// thread). Records logged after that are discarded.
pub struct TelemetryGuard {
    _async: slog_async::AsyncGuard,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TelemetryGuard")
    }
}

/// Builds the logging stack: opens (creating if needed) the directory and the five
/// files and starts the logging thread.
///
/// Fails with an error naming the directory when it cannot be created or written.
pub fn init(settings: &LogSettings, mask: SecretMask) -> io::Result<Telemetry> {
    let stderr: Option<Box<dyn Write + Send>> = if settings.stderr {
        Some(Box::new(io::stderr()))
    } else {
        None
    };
    init_with_stderr(settings, mask, stderr)
}

/// [`init`] with the human-readable output sent to `stderr` (tests capture it).
fn init_with_stderr(
    settings: &LogSettings,
    mask: SecretMask,
    stderr: Option<Box<dyn Write + Send>>,
) -> io::Result<Telemetry> {
    let dir = &settings.dir;
    let in_dir = |e: io::Error, what: &str| {
        io::Error::new(
            e.kind(),
            format!("log directory {}: {what}: {e}", dir.display()),
        )
    };
    std::fs::create_dir_all(dir).map_err(|e| in_dir(e, "cannot create it"))?;
    let open = |name: &str| {
        RotatingFile::open(dir.join(name), settings.rotate_bytes, settings.keep)
            .map_err(|e| in_dir(e, &format!("cannot open {name}")))
    };
    let files = Files {
        domains: [
            open(LogDomain::App.file_name())?,
            open(LogDomain::Trading.file_name())?,
            open(LogDomain::MarketData.file_name())?,
            open(LogDomain::Llm.file_name())?,
        ],
        errors: open(ERRORS_FILE)?,
    };
    let router = Router::new(settings.level, mask, files, stderr);
    let (channel, guard) = slog_async::Async::new(router)
        .chan_size(CHANNEL_RECORDS)
        .overflow_strategy(slog_async::OverflowStrategy::Block)
        .thread_name("vibex-log".into())
        .build_with_guard();
    // Errors reach the router whatever the configured level (for errors.log).
    let min_level = if settings.level.is_at_least(Level::Error) {
        Level::Error
    } else {
        settings.level
    };
    let front = Front {
        min_level,
        inner: channel,
    };
    Ok(Telemetry {
        root: Logger::root(front, o!()),
        guard: TelemetryGuard { _async: guard },
    })
}

/// The logger of a domain: `root` plus `"domain" => d` (see [`DOMAIN_KEY`]).
pub fn domain_logger(root: &Logger, d: LogDomain) -> Logger {
    root.new(o!(DOMAIN_KEY => d.as_str()))
}

/// A logger that writes nothing, for code paths and tests that need one.
pub fn discard() -> Logger {
    Logger::root(slog::Discard, o!())
}

/// A configured level name (case-insensitive): `trace`, `debug`, `info`, `warn` or
/// `warning`, `error`, `critical`.
pub fn parse_level(name: &str) -> Option<Level> {
    match name.trim().to_ascii_lowercase().as_str() {
        "trace" => Some(Level::Trace),
        "debug" => Some(Level::Debug),
        "info" => Some(Level::Info),
        "warn" | "warning" => Some(Level::Warning),
        "error" => Some(Level::Error),
        "critical" => Some(Level::Critical),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
