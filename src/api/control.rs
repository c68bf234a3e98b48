//! The control routes: add, remove, pause, resume and close-all an account, the global
//! kill switch, reload of the accounts file, and the audit trail.
//!
//! Entry points: [`configure`] (the routes), [`status_of`] (the HTTP status of a
//! refused control action, shared with the SIGHUP handler).
//! Invariants: each handler checks the caller first (`trade` for an account it sees,
//! `admin` for global actions and the audit trail); every control request that reaches
//! a handler — granted or refused — is audited ([`crate::control::Audit`]) before it is
//! answered; the actions themselves go to the Supervisor, which acts through the
//! accounts' actors and writes through the store. Request bodies are validated exactly
//! as the accounts file is; a body is never echoed with a secret in it.

use super::access::{Caller, Role};
use super::error::ApiError;
use super::{page, query, ApiState, ListQuery};
use crate::actors::messages::{
    AddAccount, CloseAllOf, ControlError, RemoveAccount, SetAccountPaused, SetKillSwitch,
};
use crate::config::BodyFormat;
use crate::control::AuditEntry;
use crate::db::queries;
use crate::domain::types::AccountId;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

/// Largest body of `POST /accounts` and `POST /kill-switch`.
const MAX_CONTROL_BODY: usize = 64 * 1024;

/// Registers the control routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/accounts", web::post().to(add_account))
        .route("/accounts/{id}", web::delete().to(remove_account))
        .route("/accounts/{id}/pause", web::post().to(pause))
        .route("/accounts/{id}/resume", web::post().to(resume))
        .route("/accounts/{id}/close-all", web::post().to(close_all))
        .route("/kill-switch", web::post().to(kill_switch_on))
        .route("/kill-switch", web::delete().to(kill_switch_off))
        .route("/config/reload", web::post().to(reload))
        .route("/audit", web::get().to(audit));
}

/// The audit action of a control route (method and registered pattern), as its handler
/// records it; `None` for a route that is not a control route. The gate names the
/// attempts it refuses with it, so `GET /audit?kind=` finds granted and refused alike.
pub fn action_of(method: &actix_web::http::Method, pattern: &str) -> Option<&'static str> {
    use actix_web::http::Method;
    Some(match (method, pattern) {
        (&Method::POST, "/accounts") => "account.add",
        (&Method::DELETE, "/accounts/{id}") => "account.remove",
        (&Method::POST, "/accounts/{id}/pause") => "account.pause",
        (&Method::POST, "/accounts/{id}/resume") => "account.resume",
        (&Method::POST, "/accounts/{id}/close-all") => "account.close_all",
        (&Method::POST, "/kill-switch") => "kill_switch.on",
        (&Method::DELETE, "/kill-switch") => "kill_switch.off",
        (&Method::POST, "/config/reload") => "config.reload",
        (&Method::GET, "/audit") => "audit.read",
        _ => return None,
    })
}

/// The HTTP status of a refused control action.
pub fn status_of(e: &ControlError) -> u16 {
    match e {
        ControlError::NotFound(_) => 404,
        ControlError::Conflict(_) => 409,
        ControlError::Invalid(_) => 400,
        ControlError::Unavailable(_) => 503,
    }
}

/// Sends `msg` to the Supervisor and maps its answer: a mailbox failure is a 503, a
/// refusal the status its kind calls for ([`api_error`]).
async fn ask_supervisor<M>(state: &ApiState, msg: M) -> Result<Value, ApiError>
where
    M: actix::Message<Result = crate::actors::messages::ControlResult> + Send + 'static,
    crate::actors::supervisor::Supervisor: actix::Handler<M>,
{
    state
        .supervisor
        .send(msg)
        .await
        .map_err(|e| ApiError::unavailable(format!("supervisor: {e}")))?
        .map_err(api_error)
}

fn api_error(e: ControlError) -> ApiError {
    let status = status_of(&e);
    match e {
        ControlError::NotFound(m) => ApiError::not_found(m),
        ControlError::Conflict(m) => ApiError::conflict(m),
        ControlError::Invalid(m) => ApiError::bad_request(m),
        ControlError::Unavailable(m) => {
            debug_assert_eq!(status, 503);
            ApiError::unavailable(m)
        }
    }
}

/// One control request being handled: who, what, on what, with which body.
struct Request<'a> {
    state: &'a ApiState,
    caller: &'a Caller,
    action: &'static str,
    target: Option<String>,
    body: Option<Value>,
}

impl Request<'_> {
    /// Audits the outcome and turns it into the answer.
    async fn answer(self, outcome: Result<Value, ApiError>) -> Result<HttpResponse, ApiError> {
        let (status, result) = match &outcome {
            Ok(v) => (200, v.clone()),
            Err(e) => (
                e.status.as_u16(),
                json!({"error": {"code": e.code, "message": e.message}}),
            ),
        };
        self.state
            .control
            .audit
            .record(AuditEntry {
                key_name: self.caller.name().to_string(),
                ip: self.caller.ip,
                action: self.action.to_string(),
                target: self.target,
                body: self.body,
                status,
                result,
            })
            .await;
        outcome.map(|v| HttpResponse::Ok().json(v))
    }
}

/// The caller may act on this existing account: `trade`, and the account in its scope
/// (404 otherwise, as for an account that does not exist).
fn may_control(state: &ApiState, caller: &Caller, id: &str) -> Result<(), ApiError> {
    caller.require(Role::Trade)?;
    caller.require_account(id)?;
    state.account(id).map(|_| ())
}

async fn add_account(
    state: web::Data<ApiState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let text = String::from_utf8_lossy(&body).to_string();
    let format = body_format(&req);
    // For the audit trail: the body as parsed (masked when recorded), else its size.
    let shown: Option<Value> = match format {
        Ok(BodyFormat::Json) => serde_json::from_str(&text).ok(),
        Ok(BodyFormat::Yaml) => serde_yaml::from_str::<serde_yaml::Value>(&text)
            .ok()
            .and_then(|v| serde_json::to_value(v).ok()),
        Err(_) => None,
    }
    .or_else(|| Some(json!({"unparsed_bytes": body.len()})));
    let target = shown
        .as_ref()
        .and_then(|v| v.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let request = Request {
        state: &state,
        caller: &caller,
        action: "account.add",
        target: target.clone(),
        body: shown,
    };
    let outcome = async {
        caller.require(Role::Trade)?;
        if body.len() > MAX_CONTROL_BODY {
            return Err(ApiError::bad_request(format!(
                "request body: {} bytes; at most {MAX_CONTROL_BODY} are accepted",
                body.len()
            )));
        }
        let format = format?;
        let env: std::collections::HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let (cfg, definition) = crate::config::account_from_body(&text, format, &env)
            .map_err(|e| ApiError::bad_request(e.0))?;
        // A scoped key adds only accounts it will see.
        if !caller.sees(cfg.id.as_str()) {
            return Err(ApiError::forbidden(format!(
                "the key {:?} may not add account {:?}: it is outside the key's accounts",
                caller.name(),
                cfg.id.as_str()
            )));
        }
        state
            .control
            .mask
            .add(crate::control::account_secrets(&cfg));
        ask_supervisor(
            &state,
            AddAccount {
                cfg,
                definition,
                by: caller.name().to_string(),
            },
        )
        .await
    }
    .await;
    request.answer(outcome).await
}

/// JSON or YAML, from the `Content-Type`.
fn body_format(req: &HttpRequest) -> Result<BodyFormat, ApiError> {
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "application/json" => Ok(BodyFormat::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => {
            Ok(BodyFormat::Yaml)
        }
        "" => Err(ApiError::bad_request(
            "Content-Type is missing; send the account as application/json or application/yaml",
        )),
        other => Err(ApiError::bad_request(format!(
            "Content-Type {other:?} is not accepted; send the account as application/json or \
             application/yaml"
        ))),
    }
}

/// `?close_positions=` of `DELETE /accounts/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveQuery {
    /// Close every position and cancel every order once drained.
    close_positions: Option<bool>,
}

async fn remove_account(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    q: web::Query<RemoveQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let close_positions = q.close_positions.unwrap_or(false);
    let request = Request {
        state: &state,
        caller: &caller,
        action: "account.remove",
        target: Some(id.clone()),
        body: Some(json!({"close_positions": close_positions})),
    };
    let outcome = async {
        may_control(&state, &caller, &id)?;
        ask_supervisor(
            &state,
            RemoveAccount {
                id: AccountId::new(&id),
                close_positions,
                by: caller.name().to_string(),
            },
        )
        .await
    }
    .await;
    request.answer(outcome).await
}

async fn set_paused(
    state: web::Data<ApiState>,
    caller: Caller,
    id: String,
    paused: bool,
) -> Result<HttpResponse, ApiError> {
    let request = Request {
        state: &state,
        caller: &caller,
        action: if paused {
            "account.pause"
        } else {
            "account.resume"
        },
        target: Some(id.clone()),
        body: None,
    };
    let outcome = async {
        may_control(&state, &caller, &id)?;
        ask_supervisor(
            &state,
            SetAccountPaused {
                id: AccountId::new(&id),
                paused,
                by: caller.name().to_string(),
            },
        )
        .await
    }
    .await;
    request.answer(outcome).await
}

async fn pause(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_paused(state, caller, path.into_inner(), true).await
}

async fn resume(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_paused(state, caller, path.into_inner(), false).await
}

async fn close_all(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let request = Request {
        state: &state,
        caller: &caller,
        action: "account.close_all",
        target: Some(id.clone()),
        body: None,
    };
    let outcome = async {
        may_control(&state, &caller, &id)?;
        ask_supervisor(
            &state,
            CloseAllOf {
                id: AccountId::new(&id),
                by: caller.name().to_string(),
            },
        )
        .await
    }
    .await;
    request.answer(outcome).await
}

/// Body of `POST /kill-switch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KillSwitchBody {
    /// Also flatten every running account.
    #[serde(default)]
    flatten: bool,
}

async fn kill_switch_on(
    state: web::Data<ApiState>,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let parsed: Result<KillSwitchBody, ApiError> = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(KillSwitchBody { flatten: false })
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "request body: expected {{\"flatten\": true|false}}: {e}"
            ))
        })
    };
    let shown = parsed
        .as_ref()
        .ok()
        .map(|b| json!({"flatten": b.flatten}))
        .or_else(|| Some(json!({"unparsed_bytes": body.len()})));
    let request = Request {
        state: &state,
        caller: &caller,
        action: "kill_switch.on",
        target: None,
        body: shown,
    };
    let outcome = async {
        caller.require(Role::Admin)?;
        let parsed = parsed?;
        ask_supervisor(
            &state,
            SetKillSwitch {
                enabled: true,
                flatten: parsed.flatten,
                by: caller.name().to_string(),
            },
        )
        .await
    }
    .await;
    request.answer(outcome).await
}

async fn kill_switch_off(
    state: web::Data<ApiState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let request = Request {
        state: &state,
        caller: &caller,
        action: "kill_switch.off",
        target: None,
        body: None,
    };
    let outcome = async {
        caller.require(Role::Admin)?;
        ask_supervisor(
            &state,
            SetKillSwitch {
                enabled: false,
                flatten: false,
                by: caller.name().to_string(),
            },
        )
        .await
    }
    .await;
    request.answer(outcome).await
}

async fn reload(state: web::Data<ApiState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let request = Request {
        state: &state,
        caller: &caller,
        action: "config.reload",
        target: None,
        body: None,
    };
    let outcome = async {
        caller.require(Role::Admin)?;
        crate::control::reload_accounts(&state.control, &state.supervisor, caller.name())
            .await
            .map_err(api_error)
    }
    .await;
    request.answer(outcome).await
}

async fn audit(
    state: web::Data<ApiState>,
    caller: Caller,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    if let Err(e) = caller.require(Role::Admin) {
        // A refused look at the audit trail is itself audited.
        let result = json!({"error": {"code": e.code, "message": e.message}});
        state
            .control
            .audit
            .record(AuditEntry {
                key_name: caller.name().to_string(),
                ip: caller.ip,
                action: "audit.read".into(),
                target: None,
                body: None,
                status: e.status.as_u16(),
                result,
            })
            .await;
        return Err(e);
    }
    // `account_id` names the target; a removed account's trail stays listed.
    let mut q = q.into_inner();
    let target = q.account_id.take();
    if let Some(id) = &target {
        caller.require_account(id)?;
    }
    let mut f = q.filter(&state, &caller)?;
    f.account_id = target;
    if let Some(k) = &f.kind {
        f.kind = Some(k.trim().to_string());
    }
    let limit = f.limit;
    let mut rows = query(&state, move |c| queries::list_control_actions(c, &f)).await?;
    // A key scoped to some accounts sees only the trail of those accounts.
    if !caller.sees_all() {
        rows.retain(|r| r.target.as_deref().is_some_and(|t| caller.sees(t)));
    }
    Ok(page(rows, limit))
}
