//! What every test or benchmark that starts a `vibex` process needs: the variables of
//! the developer's shell that would change its configuration, and a free port.
//! (Shared with `benches/support` through `#[path]`.)

/// Environment variables of the developer's shell that would change the configuration
/// of a `vibex` started by a test; removed from its environment.
pub const AMBIENT: &[&str] = &[
    "ASTERDEX_API_KEY",
    "ASTERDEX_API_SECRET",
    "OPENROUTER_API_KEY",
    "LLM_MODEL",
    "ASSETS",
    "INTERVAL",
    "MULTI_ACCOUNT_MODE",
    "ACCOUNT_IDS",
    "DATABASE_URL",
    "API_HOST",
    "API_PORT",
    "VIBEX_LOG_DIR",
    "VIBEX_DATA_DIR",
    "VIBEX_LOG_LEVEL",
];

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
