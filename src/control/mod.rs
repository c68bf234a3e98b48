//! The control plane's shared pieces: the accounts the API sees ([`AccountDirectory`],
//! following adds, removals and reloads), the audit trail ([`Audit`]: a row, a log line
//! and a `control` event per control request, granted or refused), and what the API and
//! the SIGHUP handler need to act ([`ControlPlane`], [`reload_accounts`], and
//! [`KeyReload`], through which a reload replaces the API's keys).
//!
//! The actions themselves are the Supervisor's (`actors/supervisor.rs`: add, remove,
//! pause, resume, close-all, kill switch, reload), which acts through each account's
//! actors and writes its rows through the store; the routes are in `api/control.rs`.
//!
//! Invariants: an audit row names the API key by its name, never the key; request
//! bodies are stored with every secret field masked unless it is a `${VAR}` reference;
//! the audit row is durable (PostgreSQL or the spool) before the request is answered,
//! and its `control` event is published once it is.

use crate::actors::events::{Channel, EventDraft};
use crate::actors::messages::{ControlResult, ReloadAccounts};
use crate::actors::supervisor::Supervisor;
use crate::config::{AccountConfig, ApiKeyConfig, LoadOptions};
use crate::db::models::{AccountControlRow, AccountRow, ControlActionRow};
use crate::domain::types::AccountId;
use crate::store::{ControlRow, Rows, Store, Write};
use crate::telemetry::SecretMask;
use actix::Addr;
use chrono::Utc;
use serde_json::{json, Value};
use slog::{error, info, warn, Logger};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long a control request waits for its audit row to become durable before it
/// answers anyway (and says so in errors.log).
const AUDIT_DURABLE_WAIT: Duration = Duration::from_secs(5);

/// The accounts the API knows, in order (the file's first, then those added at
/// runtime). Removed accounts stay (state `stopped`): their rows stay queryable.
/// The Supervisor updates it; request handlers read it.
#[derive(Clone, Default)]
pub struct AccountDirectory(Arc<RwLock<Vec<Arc<AccountConfig>>>>);

impl AccountDirectory {
    /// A directory holding `accounts`.
    pub fn new(accounts: impl IntoIterator<Item = AccountConfig>) -> Self {
        AccountDirectory(Arc::new(RwLock::new(
            accounts.into_iter().map(Arc::new).collect(),
        )))
    }

    /// The account with this id.
    pub fn get(&self, id: &str) -> Option<Arc<AccountConfig>> {
        let list = self.0.read().unwrap_or_else(|p| p.into_inner());
        list.iter().find(|a| a.id.as_str() == id).cloned()
    }

    /// Every account, in order.
    pub fn all(&self) -> Vec<Arc<AccountConfig>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Adds an account, or replaces the one with its id (in place).
    pub fn upsert(&self, cfg: Arc<AccountConfig>) {
        let mut list = self.0.write().unwrap_or_else(|p| p.into_inner());
        match list.iter_mut().find(|a| a.id == cfg.id) {
            Some(slot) => *slot = cfg,
            None => list.push(cfg),
        }
    }
}

/// The `accounts` row of an account (its configuration, secrets masked).
pub fn account_row(cfg: &AccountConfig) -> AccountRow {
    let now = Utc::now();
    AccountRow {
        id: cfg.id.to_string(),
        mode: cfg.mode.as_str().to_string(),
        venue_base_url: cfg.asterdex.base_url.clone(),
        llm_model: cfg.llm_model.clone(),
        assets: cfg.assets.iter().map(|a| a.to_string()).collect(),
        interval_label: cfg.interval.label.clone(),
        leverage: i32::try_from(cfg.leverage).unwrap_or(i32::MAX),
        status: "registered".into(),
        paper_starting_balance: cfg.paper.starting_balance_usd,
        paper_wallet_balance: cfg.paper.starting_balance_usd,
        // Secrets serialise masked.
        config: serde_json::to_value(cfg).unwrap_or_default(),
        created_at: now,
        updated_at: now,
    }
}

/// The `account_controls` row recording the operator's wish for an account.
pub fn control_row(
    id: &AccountId,
    state: &str,
    origin: &str,
    definition: Option<Value>,
    by: &str,
) -> Rows {
    Rows::Control(ControlRow::Account(AccountControlRow {
        account_id: id.to_string(),
        state: state.to_string(),
        origin: origin.to_string(),
        definition,
        updated_by: by.to_string(),
        updated_at: Utc::now(),
    }))
}

/// The secret values of one account (for the log masker).
pub fn account_secrets(cfg: &AccountConfig) -> Vec<String> {
    [
        &cfg.asterdex.api_key,
        &cfg.asterdex.api_secret,
        &cfg.asterdex.private_key,
        &cfg.openrouter.api_key,
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .map(|s| s.expose().to_string())
    .collect()
}

/// What identifies an account's settings: two configurations with the same
/// fingerprint trade the same way (secrets included, so a rotated key is a change).
/// Kept in memory only.
pub fn fingerprint(cfg: &AccountConfig) -> String {
    format!(
        "{}|{:?}",
        serde_json::to_string(cfg).unwrap_or_default(),
        account_secrets(cfg)
    )
}

/// Keys whose values are secrets wherever they appear in a request body.
const SECRET_KEYS: &[&str] = &[
    "api_key",
    "api_secret",
    "private_key",
    "secret",
    "password",
    "token",
];

/// A request body with every secret value masked (`***`), except a pure `${VAR}`
/// reference, which names a variable and is kept.
pub fn mask_body(body: &Value) -> Value {
    match body {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let secret = SECRET_KEYS.iter().any(|s| k.eq_ignore_ascii_case(s));
                    let masked = match v {
                        Value::String(s) if secret && is_reference(s) => v.clone(),
                        Value::Null => Value::Null,
                        _ if secret => Value::String("***".into()),
                        _ => mask_body(v),
                    };
                    (k.clone(), masked)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(mask_body).collect()),
        other => other.clone(),
    }
}

fn is_reference(s: &str) -> bool {
    let s = s.trim();
    s.starts_with("${") && s.ends_with('}') && s.matches("${").count() == 1
}

/// One control request for the audit trail.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    /// The API key's name (never the key), `(no key)`, or `SIGHUP`.
    pub key_name: String,
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// `account.add`, `account.remove`, `account.pause`, `account.resume`,
    /// `account.close_all`, `kill_switch.on`, `kill_switch.off`, `config.reload`,
    /// `audit.read`, or the route of a refused request.
    pub action: String,
    /// The account, for an account action.
    pub target: Option<String>,
    /// The request body (masked here before it is stored).
    pub body: Option<Value>,
    /// The HTTP status answered.
    pub status: u16,
    /// What was done, or why not.
    pub result: Value,
}

/// The audit trail: every control request, granted or refused, becomes a
/// `control_actions` row, a line in trading.log and a `control` event on
/// `/ws/trading-events`.
#[derive(Clone)]
pub struct Audit {
    store: Store,
    log: Logger,
}

impl Audit {
    /// An audit trail writing through `store` and logging to `log` (the trading log).
    pub fn new(store: Store, log: &Logger) -> Self {
        Audit {
            store,
            log: log.new(slog::o!("component" => "control")),
        }
    }

    /// Records `entry`; resolves once its row is durable (or after
    /// [`AUDIT_DURABLE_WAIT`], saying so in the error log).
    pub async fn record(&self, entry: AuditEntry) {
        let row = ControlActionRow {
            id: uuid::Uuid::now_v7(),
            ts: Utc::now(),
            key_name: entry.key_name,
            client_ip: entry.ip.map(|ip| ip.to_string()),
            action: entry.action,
            target: entry.target,
            body: entry.body.as_ref().map(mask_body),
            status: i32::from(entry.status),
            result: entry.result,
        };
        let granted = row.status < 400;
        let fields = slog::o!("key_name" => row.key_name.clone(),
            "client_ip" => row.client_ip.clone(), "action" => row.action.clone(),
            "target" => row.target.clone(), "status" => row.status);
        if granted {
            info!(self.log.new(fields), "control action");
        } else {
            warn!(self.log.new(fields), "control action refused";
                "result" => row.result.to_string());
        }
        let data = json!({
            "id": row.id,
            "key_name": row.key_name,
            "client_ip": row.client_ip,
            "action": row.action,
            "target": row.target,
            "status": row.status,
            "result": row.result,
        });
        let event = EventDraft {
            channel: Channel::TradingEvents,
            kind: "control",
            account_id: row.target.as_deref().map(AccountId::new),
            cycle_id: None,
            symbol: None,
            ts: row.ts,
            data,
        };
        let write = Write::new(vec![Rows::Control(ControlRow::Action(row))], vec![event]);
        match tokio::time::timeout(AUDIT_DURABLE_WAIT, self.store.write_durable(write)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                error!(self.log, "a control action could not be stored"; "error" => e.to_string())
            }
            Err(_) => {
                error!(self.log, "a control action was not durable in time; answering anyway";
                "waited_ms" => AUDIT_DURABLE_WAIT.as_millis() as u64)
            }
        }
    }

    /// Records a request the gate refused before any handler ran (401, 429; also 403
    /// where the gate decides): who (the key's name, or `(no key)`), from where, which
    /// route (`POST /kill-switch`), on which account, and the status. For the gate in
    /// front of the routes.
    pub async fn refused(
        &self,
        key_name: &str,
        ip: Option<IpAddr>,
        action: &str,
        target: Option<&str>,
        status: u16,
        reason: &str,
    ) {
        self.record(AuditEntry {
            key_name: key_name.to_string(),
            ip,
            action: action.to_string(),
            target: target.map(str::to_string),
            body: None,
            status,
            result: json!({"error": reason}),
        })
        .await;
    }
}

/// The API's keys as a reload sees them (the API's gate implements it): a reload checks
/// the configuration's keys before it changes anything, and puts them in place once the
/// accounts are reloaded.
pub trait KeyReload: Send + Sync {
    /// Why these keys cannot replace the current ones (naming `api.keys`), if they cannot.
    fn check(&self, keys: &[ApiKeyConfig]) -> Result<(), String>;
    /// Puts `keys` in place; answers what changed (`added`, `removed`, `changed`, by name).
    fn apply(&self, keys: &[ApiKeyConfig]) -> Value;
}

/// What the control routes and the SIGHUP handler share.
#[derive(Clone)]
pub struct ControlPlane {
    /// The audit trail.
    pub audit: Audit,
    /// Where the accounts file is re-read from (`None`: reload is not available).
    pub load_options: Option<LoadOptions>,
    /// The log masker (an account added at runtime registers its secrets).
    pub mask: SecretMask,
    /// Where control actions are logged (trading.log).
    pub log: Logger,
    /// The API's keys, replaced by a reload (`None`: a reload leaves keys alone).
    pub keys: Option<Arc<dyn KeyReload>>,
}

/// Re-reads the configuration as at start, hands the accounts to the Supervisor, then
/// puts the configuration's API keys in place (the answer's `keys`: added, removed and
/// changed names). A file that fails validation, or keys the running API cannot take,
/// change nothing: the error names file, account and field (one problem per line).
pub async fn reload_accounts(
    plane: &ControlPlane,
    supervisor: &Addr<Supervisor>,
    by: &str,
) -> Result<Value, crate::actors::messages::ControlError> {
    use crate::actors::messages::ControlError;
    let Some(opts) = plane.load_options.clone() else {
        return Err(ControlError::Unavailable(
            "this daemon was not started from an accounts file it can re-read".into(),
        ));
    };
    let loaded = tokio::task::spawn_blocking(move || crate::config::load(&opts))
        .await
        .map_err(|e| ControlError::Unavailable(format!("reading the configuration: {e}")))?;
    let settings = match loaded {
        Ok(s) => s,
        Err(e) => {
            error!(plane.log, "reload refused: the configuration is invalid; nothing changed";
                "problems" => e.0.clone());
            return Err(ControlError::Invalid(e.0));
        }
    };
    if let Some(keys) = &plane.keys {
        if let Err(problem) = keys.check(&settings.api.keys) {
            error!(plane.log, "reload refused: the configuration's keys cannot be applied; \
                nothing changed"; "problems" => problem.clone());
            return Err(ControlError::Invalid(problem));
        }
    }
    plane.mask.add(settings.secret_values());
    let result: ControlResult = supervisor
        .send(ReloadAccounts {
            accounts: settings.accounts,
            by: by.to_string(),
        })
        .await
        .map_err(|e| ControlError::Unavailable(format!("supervisor: {e}")))?;
    let result = result.map(|mut diff| {
        if let (Some(keys), Some(fields)) = (&plane.keys, diff.as_object_mut()) {
            fields.insert("keys".into(), keys.apply(&settings.api.keys));
        }
        diff
    });
    if let Ok(diff) = &result {
        info!(plane.log, "accounts reloaded"; "by" => by, "diff" => diff.to_string());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_a_body_are_masked_but_references_kept() {
        let body = json!({"id": "a", "asterdex": {"api_key": "${K}", "api_secret": "plain"},
            "openrouter": {"api_key": 12345}, "assets": ["BTC"]});
        let masked = mask_body(&body);
        assert_eq!(masked["asterdex"]["api_key"], "${K}");
        assert_eq!(masked["asterdex"]["api_secret"], "***");
        assert_eq!(masked["openrouter"]["api_key"], "***");
        assert_eq!(masked["assets"][0], "BTC");
    }
}
