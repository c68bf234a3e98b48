//! The original environment formats, used only when no file lists accounts.
//!
//! - Single account (id `default`): `ASTERDEX_API_KEY`, `ASTERDEX_API_SECRET`,
//!   `OPENROUTER_API_KEY`, `LLM_MODEL`, `ASSETS` (`"BTC ETH"` or `"BTC,ETH"`), `INTERVAL`,
//!   plus `ASTERDEX_BASE_URL`, `ASTERDEX_USER`, `ASTERDEX_SIGNER`,
//!   `ASTERDEX_PRIVATE_KEY`, `ASTERDEX_RECV_WINDOW_MS`, `ASTERDEX_MARGIN_TYPE`,
//!   `ASTERDEX_WS_URL`, `OPENROUTER_BASE_URL`, `LEVERAGE`. It is used when any of
//!   them except `OPENROUTER_API_KEY` (often set for other tools) is set.
//! - Several accounts: `MULTI_ACCOUNT_MODE=true`, `ACCOUNT_IDS=a1,a2` and the same names
//!   suffixed with `_<id>` (`LLM_MODEL_a1`; `_<ID>` upper-cased also works). The shared
//!   endpoints and model key (`ASTERDEX_BASE_URL`, `ASTERDEX_WS_URL`,
//!   `OPENROUTER_BASE_URL`, `OPENROUTER_API_KEY`) fall back to the unsuffixed variable.
//!
//! These formats have no `mode`: their accounts are paper accounts; a live account is
//! written in `accounts.yaml`.
//!
//! Invariant: messages name "environment", the account and the variable.

use super::raw::{AssetsInput, RawAccount, RawAster, RawOpenRouter, Scalar};
use super::validate::{check_account_id, Locate};
use std::collections::HashMap;

/// (field path, variable name) of the per-account variables.
const ACCOUNT_VARS: &[(&str, &str)] = &[
    ("asterdex.api_key", "ASTERDEX_API_KEY"),
    ("asterdex.api_secret", "ASTERDEX_API_SECRET"),
    ("asterdex.base_url", "ASTERDEX_BASE_URL"),
    ("asterdex.user", "ASTERDEX_USER"),
    ("asterdex.signer", "ASTERDEX_SIGNER"),
    ("asterdex.private_key", "ASTERDEX_PRIVATE_KEY"),
    ("asterdex.recv_window_ms", "ASTERDEX_RECV_WINDOW_MS"),
    ("asterdex.margin_type", "ASTERDEX_MARGIN_TYPE"),
    ("asterdex.ws_url", "ASTERDEX_WS_URL"),
    ("openrouter.api_key", "OPENROUTER_API_KEY"),
    ("openrouter.base_url", "OPENROUTER_BASE_URL"),
    ("llm_model", "LLM_MODEL"),
    ("assets", "ASSETS"),
    ("interval", "INTERVAL"),
    ("leverage", "LEVERAGE"),
];

/// Variables shared by all accounts in multi-account mode when no `_<id>` one is set.
const SHARED_VARS: &[&str] = &[
    "ASTERDEX_BASE_URL",
    "ASTERDEX_WS_URL",
    "OPENROUTER_BASE_URL",
    "OPENROUTER_API_KEY",
];

/// Variables whose presence selects the single-account format.
const SINGLE_TRIGGERS: &[&str] = &[
    "ASTERDEX_API_KEY",
    "ASTERDEX_API_SECRET",
    "LLM_MODEL",
    "ASSETS",
    "INTERVAL",
];

/// One account read from the environment.
#[derive(Debug)]
pub(crate) struct EnvAccount {
    /// The account, as if it had been written in a file.
    pub raw: RawAccount,
    /// Where its fields came from, for messages.
    pub place: EnvPlace,
}

/// The variables (or their absence) one account was read from.
#[derive(Debug)]
pub(crate) struct EnvPlace {
    /// Account id.
    pub id: String,
    /// Field path -> the variable that was read (or would have been).
    pub vars: Vec<(&'static str, String)>,
}

impl Locate for EnvPlace {
    fn at(&self, field: &str) -> String {
        let label = format!("environment: account {:?}", self.id);
        if field.is_empty() {
            return label;
        }
        match self.vars.iter().find(|(f, _)| *f == field) {
            Some((_, var)) => format!("{label}: variable {var}"),
            None => format!("{label}: field \"{field}\""),
        }
    }
}

/// What the environment formats yield.
#[derive(Debug, Default)]
pub(crate) struct FromEnv {
    /// The accounts found.
    pub accounts: Vec<EnvAccount>,
    /// Which format, for `config check`.
    pub description: String,
    /// The variables that select a format and are set (to report them when a file wins).
    pub present: Vec<String>,
}

fn get<'a>(vars: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on"
    )
}

/// Reads the accounts of the original environment formats. Problems in `ACCOUNT_IDS`
/// itself are pushed to `problems`; problems of an account are found by validation.
pub(crate) fn accounts_from_env(
    vars: &HashMap<String, String>,
    problems: &mut Vec<String>,
) -> FromEnv {
    let multi = get(vars, "MULTI_ACCOUNT_MODE").is_some_and(truthy);
    if multi {
        return multi_account(vars, problems);
    }
    let present: Vec<String> = SINGLE_TRIGGERS
        .iter()
        .filter(|name| get(vars, name).is_some())
        .map(|name| name.to_string())
        .collect();
    if present.is_empty() {
        return FromEnv::default();
    }
    let names = ACCOUNT_VARS
        .iter()
        .map(|(field, var)| (*field, var.to_string()))
        .collect();
    FromEnv {
        accounts: vec![build("default", names, vars)],
        description: "environment (single-account variables: LLM_MODEL, ASSETS, INTERVAL, ...)"
            .to_string(),
        present,
    }
}

fn multi_account(vars: &HashMap<String, String>, problems: &mut Vec<String>) -> FromEnv {
    let present = vec!["MULTI_ACCOUNT_MODE".to_string()];
    let Some(list) = get(vars, "ACCOUNT_IDS") else {
        problems.push(
            "environment: variable ACCOUNT_IDS: not set; MULTI_ACCOUNT_MODE=true needs \
             ACCOUNT_IDS=a1,a2 and per-account variables such as LLM_MODEL_a1"
                .to_string(),
        );
        return FromEnv {
            present,
            ..FromEnv::default()
        };
    };
    let mut accounts = Vec::new();
    for id in list
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|id| !id.is_empty())
    {
        if let Err(e) = check_account_id(id) {
            problems.push(format!("environment: variable ACCOUNT_IDS: {e}"));
            continue;
        }
        if accounts
            .iter()
            .any(|a: &EnvAccount| a.place.id.eq_ignore_ascii_case(id))
        {
            problems.push(format!(
                "environment: variable ACCOUNT_IDS: {id:?} is listed twice; ids must be unique"
            ));
            continue;
        }
        let upper = id.to_ascii_uppercase();
        let mut names = vec![("id", "ACCOUNT_IDS".to_string())];
        for (field, base) in ACCOUNT_VARS {
            let candidates = [format!("{base}_{id}"), format!("{base}_{upper}")];
            let found = candidates
                .iter()
                .find(|name| get(vars, name).is_some())
                .cloned()
                .or_else(|| {
                    (SHARED_VARS.contains(base) && get(vars, base).is_some())
                        .then(|| base.to_string())
                });
            let [exact, _] = candidates;
            names.push((*field, found.unwrap_or(exact)));
        }
        accounts.push(build(id, names, vars));
    }
    if accounts.is_empty() && problems.is_empty() {
        problems.push(
            "environment: variable ACCOUNT_IDS: lists no account id; write ACCOUNT_IDS=a1,a2"
                .to_string(),
        );
    }
    FromEnv {
        accounts,
        description: "environment (MULTI_ACCOUNT_MODE, ACCOUNT_IDS and per-account variables)"
            .to_string(),
        present,
    }
}

fn build(
    id: &str,
    names: Vec<(&'static str, String)>,
    vars: &HashMap<String, String>,
) -> EnvAccount {
    let value = |field: &str| -> Option<String> {
        let (_, var) = names.iter().find(|(f, _)| *f == field)?;
        get(vars, var).map(str::to_string)
    };
    let text = |field: &str| value(field).map(Scalar::Text);
    let raw = RawAccount {
        id: Some(Scalar::Text(id.to_string())),
        mode: None,
        asterdex: Some(RawAster {
            base_url: text("asterdex.base_url"),
            api_key: text("asterdex.api_key"),
            api_secret: text("asterdex.api_secret"),
            user: text("asterdex.user"),
            signer: text("asterdex.signer"),
            private_key: text("asterdex.private_key"),
            recv_window_ms: text("asterdex.recv_window_ms"),
            margin_type: text("asterdex.margin_type"),
            ws_url: text("asterdex.ws_url"),
        }),
        openrouter: Some(RawOpenRouter {
            base_url: text("openrouter.base_url"),
            api_key: text("openrouter.api_key"),
        }),
        llm_model: text("llm_model"),
        assets: value("assets").map(AssetsInput::Text),
        interval: text("interval"),
        leverage: text("leverage"),
        risk: None,
        paper: None,
        llm: None,
    };
    EnvAccount {
        raw,
        place: EnvPlace {
            id: id.to_string(),
            vars: names,
        },
    }
}
