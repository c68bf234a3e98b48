//! Reading the sources: locating the files, parsing TOML / YAML / `.env` into figment
//! dictionaries, `${VAR}` interpolation, and the figment layers they become.
//!
//! Invariants: nothing here reads or writes the process environment (the variables are
//! passed in); a file that was named explicitly must exist, a default one is optional;
//! error messages name the file as given and never echo a line of a file (it may hold a
//! secret).

use super::raw::Scalar;
use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A configuration file to read: where it is and how messages name it.
#[derive(Clone, Debug)]
pub(crate) struct SourceFile {
    /// Where to read it.
    pub path: PathBuf,
    /// How messages name it: the path as given, or the bare default name.
    pub shown: String,
}

/// Finds one of the three files. `explicit` is what the flag gave; without it the
/// default name is looked up in `base` (the working directory) and is optional.
pub(crate) fn locate(
    explicit: Option<&Path>,
    default_name: &str,
    flag: &str,
    base: &Path,
) -> Result<Option<SourceFile>, String> {
    match explicit {
        Some(given) => {
            let shown = given.display().to_string();
            let path = base.join(given);
            if path.is_file() {
                Ok(Some(SourceFile { path, shown }))
            } else if path.exists() {
                Err(format!("{shown}: is not a file (given with {flag})"))
            } else {
                Err(format!(
                    "{shown}: file not found (given with {flag}); check the path, or leave \
                     {flag} out to use ./{default_name} when it exists"
                ))
            }
        }
        None => {
            let path = base.join(default_name);
            let shown = default_name.to_string();
            if path.is_file() {
                Ok(Some(SourceFile { path, shown }))
            } else if path.exists() {
                Err(format!("{shown}: is not a file"))
            } else {
                Ok(None)
            }
        }
    }
}

fn read_text(file: &SourceFile) -> Result<String, String> {
    std::fs::read_to_string(&file.path).map_err(|e| format!("{}: cannot be read: {e}", file.shown))
}

/// Reads and parses `vibex.toml`.
pub(crate) fn read_toml(file: &SourceFile) -> Result<Dict, String> {
    let text = read_text(file)?;
    Toml::from_str::<Dict>(&text).map_err(|e| {
        let at = e
            .span()
            .map(|span| {
                let (line, column) = line_column(&text, span.start);
                format!(" at line {line} column {column}")
            })
            .unwrap_or_default();
        format!(
            "{}: is not valid TOML{at}: {}",
            file.shown,
            e.message().trim()
        )
    })
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Reads and parses `accounts.yaml` (YAML anchors and `<<:` merge keys are applied, so
/// accounts can share blocks). An empty file is an empty configuration.
pub(crate) fn read_yaml(file: &SourceFile) -> Result<Dict, String> {
    let text = read_text(file)?;
    parse_yaml(&text).map_err(|e| format!("{}: {e}", file.shown))
}

fn parse_yaml(text: &str) -> Result<Dict, String> {
    use serde::Deserialize;
    let mut value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| format!("is not valid YAML: {e}"))?;
    value
        .apply_merge()
        .map_err(|e| format!("is not valid YAML: {e}"))?;
    match value {
        serde_yaml::Value::Null => Ok(Dict::new()),
        serde_yaml::Value::Mapping(_) => {
            Dict::deserialize(value).map_err(|e| format!("cannot be read as configuration: {e}"))
        }
        _ => Err("must be a mapping of keys at the top (for example `accounts:`)".to_string()),
    }
}

/// Reads a `.env` file with dotenvy without touching the process environment.
pub(crate) fn read_dotenv(file: &SourceFile) -> Result<HashMap<String, String>, String> {
    let text = read_text(file)?;
    let mut vars = HashMap::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok((key, value)) => {
                vars.insert(key, value);
            }
            Err(dotenvy::Error::LineParse(fragment, _)) => {
                // dotenvy reports the line, or only its value part; find the line number
                // and never echo the text (it may hold a secret).
                let fragment = fragment.trim();
                let number = text
                    .lines()
                    .position(|l| l.trim() == fragment)
                    .or_else(|| {
                        (!fragment.is_empty())
                            .then(|| text.lines().position(|l| l.contains(fragment)))
                            .flatten()
                    })
                    .map_or_else(String::new, |n| format!(" {}", n + 1));
                return Err(format!(
                    "{}: line{number} cannot be parsed; write KEY=value, quoting values that \
                     contain spaces, '#' or quotes",
                    file.shown
                ));
            }
            Err(e) => return Err(format!("{}: cannot be read: {e}", file.shown)),
        }
    }
    Ok(vars)
}

/// A figment provider for one already-parsed source, named the way messages name it.
pub(crate) struct Layer {
    name: String,
    dict: Dict,
}

impl Layer {
    /// A layer called `name` holding `dict`.
    pub(crate) fn new(name: impl Into<String>, dict: Dict) -> Self {
        Layer {
            name: name.into(),
            dict,
        }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// Environment variables that set top-level keys: (variable, key path).
pub(crate) const TOP_LEVEL_VARS: &[(&str, &str)] = &[
    ("API_HOST", "api.host"),
    ("API_PORT", "api.port"),
    ("VIBEX_LOG_DIR", "log_dir"),
    ("VIBEX_DATA_DIR", "data_dir"),
    ("VIBEX_LOG_LEVEL", "log_level"),
    ("DATABASE_URL", "database_url"),
];

/// The variable that sets a top-level key, if any.
pub(crate) fn top_level_var(path: &str) -> Option<&'static str> {
    TOP_LEVEL_VARS
        .iter()
        .find(|(_, p)| *p == path)
        .map(|(var, _)| *var)
}

/// The top-level keys set by `vars` (empty values count as unset), and the names used.
pub(crate) fn env_layer(vars: &HashMap<String, String>) -> (Dict, Vec<&'static str>) {
    let mut dict = Dict::new();
    let mut used = Vec::new();
    for (var, path) in TOP_LEVEL_VARS {
        let Some(value) = vars.get(*var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        insert_path(&mut dict, path, Value::from(value.trim().to_string()));
        used.push(*var);
    }
    (dict, used)
}

fn insert_path(dict: &mut Dict, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            dict.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let entry = dict
                .entry(head.to_string())
                .or_insert_with(|| Value::from(Dict::new()));
            if !matches!(entry, Value::Dict(..)) {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// The id of a not-yet-validated account, as written (trimmed); `None` when absent,
/// blank or not text.
pub(crate) fn raw_id(id: Option<&Scalar>) -> Option<String> {
    match id? {
        Scalar::Text(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Scalar::Number(n) => Some(n.clone()),
        Scalar::Bool(_) => None,
    }
}

/// The raw id of an account value (see [`raw_id`]).
pub(crate) fn raw_id_of_value(account: &Value) -> Option<String> {
    let id = account
        .find_ref("id")
        .and_then(|v| v.deserialize::<Scalar>().ok());
    raw_id(id.as_ref())
}

/// How an account is named in messages before it is validated: by its `id` when it has
/// a usable one, else by its 1-based position.
pub(crate) fn account_label(id: Option<&str>, index: usize) -> String {
    match id {
        Some(id) => format!("account {id:?}"),
        None => format!("account #{}", index + 1),
    }
}

/// The label of a not-yet-deserialized account value.
pub(crate) fn label_of_value(account: &Value, index: usize) -> String {
    account_label(raw_id_of_value(account).as_deref(), index)
}

/// Joins a figment error path into the dotted field name used in messages; list
/// positions are shown 1-based in brackets (`assets[2]`).
pub(crate) fn join_path<S: AsRef<str>>(segments: &[S]) -> String {
    let mut out = String::new();
    for segment in segments {
        let segment = segment.as_ref();
        match segment.parse::<usize>() {
            Ok(i) => out.push_str(&format!("[{}]", i + 1)),
            Err(_) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(segment);
            }
        }
    }
    out
}

/// Why a `${...}` reference could not be replaced.
#[derive(Debug, PartialEq)]
pub(crate) enum InterpolationError {
    /// `${NAME}` with `NAME` set nowhere and no default.
    Missing(String),
    /// Not a well-formed reference.
    Malformed(String),
}

/// Replaces `${NAME}` and `${NAME:-default}` (default when unset or empty) in `text`;
/// `$${` writes a literal `${`. Any other `$` is kept as is.
pub(crate) fn interpolate(
    text: &str,
    vars: &HashMap<String, String>,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((before, after)) = rest.split_once('$') {
        out.push_str(before);
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let Some((body, tail)) = tail.split_once('}') else {
                return Err(InterpolationError::Malformed(
                    "has a \"${\" without its closing \"}\"".to_string(),
                ));
            };
            let (name, default) = match body.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (body, None),
            };
            if !is_variable_name(name) {
                return Err(InterpolationError::Malformed(format!(
                    "has \"${{{body}}}\", which is not a variable reference; write ${{NAME}} or \
                     ${{NAME:-default}} with NAME made of letters, digits and '_'"
                )));
            }
            match (vars.get(name), default) {
                (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
                (Some(value), _) => out.push_str(value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => return Err(InterpolationError::Missing(name.to_string())),
            }
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Where interpolation failed: the problems, and the locations they are about (so that
/// follow-up errors on the same un-replaced values can be dropped).
#[derive(Debug, Default)]
pub(crate) struct InterpolationProblems {
    /// One line per failed reference.
    pub problems: Vec<String>,
    /// `file: account "id": field "x"` of each failed value.
    pub locations: Vec<String>,
}

impl InterpolationProblems {
    /// True when `problem` is about a value whose interpolation failed.
    pub(crate) fn covers(&self, problem: &str) -> bool {
        self.locations.iter().any(|at| {
            problem
                .strip_prefix(at.as_str())
                .is_some_and(|rest| rest.starts_with(": "))
        })
    }
}

/// Interpolates every string value of a parsed file, keeping the path so that an error
/// names the file, the account and the field (and the variable).
pub(crate) fn interpolate_file(
    dict: &mut Dict,
    file: &str,
    vars: &HashMap<String, String>,
    problems: &mut InterpolationProblems,
) {
    for (key, value) in dict.iter_mut() {
        match value {
            Value::Array(_, accounts) if key == "accounts" => {
                for (index, account) in accounts.iter_mut().enumerate() {
                    let label = label_of_value(account, index);
                    let prefix = format!("{file}: {label}");
                    let mut path = Vec::new();
                    walk(account, &mut path, &prefix, vars, problems);
                }
            }
            _ => {
                let mut path = vec![key.clone()];
                walk(value, &mut path, file, vars, problems);
            }
        }
    }
}

fn walk(
    value: &mut Value,
    path: &mut Vec<String>,
    prefix: &str,
    vars: &HashMap<String, String>,
    problems: &mut InterpolationProblems,
) {
    match value {
        Value::String(_, text) => {
            if !text.contains('$') {
                return;
            }
            match interpolate(text, vars) {
                Ok(replaced) => *text = replaced,
                Err(error) => {
                    let field = join_path(path);
                    let at = if field.is_empty() {
                        prefix.to_string()
                    } else {
                        format!("{prefix}: field \"{field}\"")
                    };
                    problems.locations.push(at.clone());
                    problems.problems.push(match error {
                        InterpolationError::Missing(name) => format!(
                            "{at}: variable {name} is not set; set it in the environment or in \
                             .env, or give a default with ${{{name}:-default}}"
                        ),
                        InterpolationError::Malformed(why) => format!("{at}: {why}"),
                    });
                }
            }
        }
        Value::Dict(_, dict) => {
            for (key, inner) in dict.iter_mut() {
                path.push(key.clone());
                walk(inner, path, prefix, vars, problems);
                path.pop();
            }
        }
        Value::Array(_, items) => {
            for (index, inner) in items.iter_mut().enumerate() {
                path.push(index.to_string());
                walk(inner, path, prefix, vars, problems);
                path.pop();
            }
        }
        _ => {}
    }
}
