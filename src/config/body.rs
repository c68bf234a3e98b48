//! One account from a request body (`POST /accounts`, JSON or YAML) or from a stored
//! definition of an account added that way, validated exactly as an account of the
//! accounts file is: the same rules, the same messages naming the field.
//!
//! Entry points: [`account_from_body`], [`account_from_definition`].
//! Invariants: a secret field (`asterdex.api_key`, `asterdex.api_secret`,
//! `asterdex.private_key`, `openrouter.api_key`) is accepted only as one `${VAR}`
//! reference, resolved from the daemon's environment; a plain-text value is refused
//! without ever being echoed. The definition handed back is the body as given (the
//! references, never their values): it is what may be stored.

use super::raw::{RawAccount, SECRET_FIELDS};
use super::sources::{self, InterpolationProblems};
use super::validate::{self, Locate};
use super::{describe_kind, AccountConfig, ConfigError};
use figment::value::{Dict, Value};
use std::collections::HashMap;

/// How a body is written (from its `Content-Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`.
    Json,
    /// `application/yaml`, `application/x-yaml`, `text/yaml`.
    Yaml,
}

/// Where messages say a body's problems are.
const BODY: &str = "request body";
/// Where messages say a stored definition's problems are.
const STORED: &str = "stored definition (added over the API)";

/// Parses and validates one account from a request body; answers the account and the
/// definition to store (the body as given: `${VAR}` references, no secret value).
pub fn account_from_body(
    text: &str,
    format: BodyFormat,
    env: &HashMap<String, String>,
) -> Result<(AccountConfig, serde_json::Value), ConfigError> {
    let definition: serde_json::Value = match format {
        BodyFormat::Json => serde_json::from_str(text)
            .map_err(|e| ConfigError(format!("{BODY}: is not valid JSON: {e}")))?,
        BodyFormat::Yaml => {
            let mut v: serde_yaml::Value = serde_yaml::from_str(text)
                .map_err(|e| ConfigError(format!("{BODY}: is not valid YAML: {e}")))?;
            v.apply_merge()
                .map_err(|e| ConfigError(format!("{BODY}: is not valid YAML: {e}")))?;
            serde_json::to_value(v)
                .map_err(|e| ConfigError(format!("{BODY}: cannot be read as an account: {e}")))?
        }
    };
    let account = validate_definition(&definition, BODY, env)?;
    Ok((account, definition))
}

/// Validates a stored definition again (at start: the variables are resolved from the
/// environment of this run).
pub fn account_from_definition(
    definition: &serde_json::Value,
    env: &HashMap<String, String>,
) -> Result<AccountConfig, ConfigError> {
    validate_definition(definition, STORED, env)
}

fn validate_definition(
    definition: &serde_json::Value,
    shown: &str,
    env: &HashMap<String, String>,
) -> Result<AccountConfig, ConfigError> {
    if !definition.is_object() {
        return Err(ConfigError(format!(
            "{shown}: must be one account as a mapping of keys (id, llm_model, assets, \
             interval, ...)"
        )));
    }
    let value = Value::serialize(definition)
        .map_err(|e| ConfigError(format!("{shown}: cannot be read as an account: {e}")))?;
    let label = sources::account_label(sources::raw_id_of_value(&value).as_deref(), 0);
    let locate = validate::FileAccount { file: shown, label };
    let mut problems = plain_secrets(&value, &locate);
    if !problems.is_empty() {
        return Err(ConfigError(problems.join("\n")));
    }
    let mut dict = Dict::new();
    dict.insert("accounts".into(), Value::from(vec![value]));
    let mut interpolation = InterpolationProblems::default();
    sources::interpolate_file(&mut dict, shown, env, &mut interpolation);
    if !interpolation.problems.is_empty() {
        return Err(ConfigError(interpolation.problems.join("\n")));
    }
    let Some(Value::Array(_, mut list)) = dict.remove("accounts") else {
        return Err(ConfigError(format!(
            "{shown}: cannot be read as an account"
        )));
    };
    let Some(value) = list.pop() else {
        return Err(ConfigError(format!(
            "{shown}: cannot be read as an account"
        )));
    };
    let account = match value.deserialize::<RawAccount>() {
        Ok(raw) => validate::account(raw, &locate, &mut problems),
        Err(errors) => {
            for e in errors {
                let field = sources::join_path(&e.path);
                let message = describe_kind(&e.kind, &field);
                problems.push(format!("{}: {message}", locate.at(&field)));
            }
            None
        }
    };
    match account {
        Some(a) if problems.is_empty() => Ok(a),
        _ => Err(ConfigError(problems.join("\n"))),
    }
}

/// A secret given in plain text instead of a `${VAR}` reference (never echoed).
fn plain_secrets(account: &Value, locate: &dyn Locate) -> Vec<String> {
    SECRET_FIELDS
        .iter()
        .filter(|f| f.contains('.'))
        .filter_map(|field| {
            let value = account.find_ref(field)?;
            let ok = match value {
                Value::String(_, s) => s.trim().is_empty() || is_reference(s.trim()),
                Value::Empty(..) => true,
                _ => false,
            };
            (!ok).then(|| {
                format!(
                    "{}: a secret is accepted only as a reference to the daemon's environment, \
                     like \"${{ASTER_API_KEY_A1}}\"; it was given in plain text (the value is \
                     not stored, logged or echoed)",
                    locate.at(field)
                )
            })
        })
        .collect()
}

/// `${NAME}`, exactly one reference and nothing else (no default: a default would be a
/// secret in plain text).
fn is_reference(text: &str) -> bool {
    text.strip_prefix("${")
        .and_then(|t| t.strip_suffix('}'))
        .is_some_and(|name| {
            let mut chars = name.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> HashMap<String, String> {
        HashMap::from([("OR_KEY".to_string(), "sk-or-secret-value".to_string())])
    }

    #[test]
    fn a_json_body_is_validated_like_a_file_account() {
        let body = r#"{"id":"n1","llm_model":"builtin/hold","assets":["BTC"],"interval":"5s"}"#;
        let (cfg, def) = account_from_body(body, BodyFormat::Json, &env()).unwrap();
        assert_eq!(cfg.id.as_str(), "n1");
        assert_eq!(def["interval"], "5s");
    }

    #[test]
    fn a_bad_field_is_named_with_the_account() {
        let body = "id: n2\nllm_model: builtin/hold\nassets: [BTC]\ninterval: 5s\nleverage: 99\n";
        let err = account_from_body(body, BodyFormat::Yaml, &env()).unwrap_err();
        assert!(
            err.0
                .starts_with("request body: account \"n2\": field \"leverage\""),
            "{}",
            err.0
        );
    }

    #[test]
    fn a_plain_secret_is_refused_and_never_echoed_and_a_reference_is_resolved() {
        let plain = r#"{"id":"n3","llm_model":"x/y","assets":["BTC"],"interval":"1m",
            "openrouter":{"api_key":"sk-or-plaintext"}}"#;
        let err = account_from_body(plain, BodyFormat::Json, &env()).unwrap_err();
        assert!(err.0.contains("openrouter.api_key"), "{}", err.0);
        assert!(!err.0.contains("sk-or-plaintext"), "{}", err.0);
        let referenced = r#"{"id":"n3","llm_model":"x/y","assets":["BTC"],"interval":"1m",
            "openrouter":{"api_key":"${OR_KEY}"}}"#;
        let (cfg, def) = account_from_body(referenced, BodyFormat::Json, &env()).unwrap();
        assert_eq!(cfg.openrouter.api_key.expose(), "sk-or-secret-value");
        assert_eq!(def["openrouter"]["api_key"], "${OR_KEY}");
    }

    #[test]
    fn a_missing_variable_names_the_field_and_the_variable() {
        let body = r#"{"id":"n4","llm_model":"x/y","assets":["BTC"],"interval":"1m",
            "openrouter":{"api_key":"${NOT_SET_ANYWHERE}"}}"#;
        let err = account_from_body(body, BodyFormat::Json, &env()).unwrap_err();
        assert!(err.0.contains("NOT_SET_ANYWHERE"), "{}", err.0);
        assert!(err.0.contains("openrouter.api_key"), "{}", err.0);
    }
}
