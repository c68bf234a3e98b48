//! Who is calling: the caller's role and account scope.
//!
//! Entry point: [`Caller`], an extractor every handler that reads or controls account data
//! takes. The gate in front of the routes (see `app::serve`) decides who the caller is and
//! puts a `Caller` into the request's extensions; a handler never looks at headers itself.
//! Invariants: roles are ordered `read < trade < admin`; a caller scoped to some accounts
//! never sees another account — a path naming one is a 404 (not a 403, which would confirm
//! that it exists), and lists, aggregates and streams leave it out. A request that reached
//! a handler without a `Caller` is refused (401): the gate is the only way in.

use crate::api::error::ApiError;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::future::{ready, Ready};
use std::net::IpAddr;
use std::sync::Arc;

/// What a caller may do. Ordered: each role may do everything the roles below it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read every route of the accounts it sees.
    Read,
    /// Also control its accounts (pause, resume, close-all, add, remove).
    Trade,
    /// Also global actions (kill switch, reload, audit, logs).
    Admin,
}

impl Role {
    /// The role's name as configured and shown (`read`, `trade`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Trade => "trade",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Role::Read),
            "trade" => Ok(Role::Trade),
            "admin" => Ok(Role::Admin),
            other => Err(format!("role must be read, trade or admin, got {other:?}")),
        }
    }
}

/// The authenticated (or, where the configuration allows it, unauthenticated) caller of
/// one request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The API key's configured name; `None` when the request carried no key and the
    /// daemon serves without keys (loopback, or `api.allow_unauthenticated`).
    pub key_name: Option<Arc<str>>,
    /// What the caller may do.
    pub role: Role,
    /// The accounts the caller may see; `None`: every account.
    pub accounts: Option<Arc<HashSet<String>>>,
    /// The client's address, for rate limits and the audit trail.
    pub ip: Option<IpAddr>,
}

impl Caller {
    /// A caller without a key on a daemon that serves without keys: every account,
    /// every action, as for a local tool.
    pub fn unauthenticated(ip: Option<IpAddr>) -> Caller {
        Caller {
            key_name: None,
            role: Role::Admin,
            accounts: None,
            ip,
        }
    }

    /// The name to write in logs and the audit trail: the key's name, never the key.
    pub fn name(&self) -> &str {
        self.key_name.as_deref().unwrap_or("(no key)")
    }

    /// Whether the caller may see this account.
    pub fn sees(&self, account_id: &str) -> bool {
        self.accounts
            .as_ref()
            .map_or(true, |set| set.contains(account_id))
    }

    /// Whether the caller sees every account (no scope).
    pub fn sees_all(&self) -> bool {
        self.accounts.is_none()
    }

    /// Refuses (403) a caller whose role is below `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this action needs role {}, the key {:?} has role {}",
                role.as_str(),
                self.name(),
                self.role.as_str()
            )))
        }
    }

    /// Refuses a path naming an account the caller does not see (404, as for an account
    /// that does not exist).
    pub fn require_account(&self, account_id: &str) -> Result<(), ApiError> {
        if self.sees(account_id) {
            Ok(())
        } else {
            Err(ApiError::unknown_account(account_id))
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(req.extensions().get::<Caller>().cloned().ok_or_else(|| {
            ApiError::unauthorized("this route needs an API key (Authorization: Bearer KEY)")
        }))
    }
}

/// A gate that admits every request as an unauthenticated caller with every right: for
/// servers built around [`crate::api::configure`] outside `vibex run` (tests, tools).
/// The daemon itself is wrapped in `api::auth::Gate`.
pub async fn open_gate(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let ip = req.peer_addr().map(|a| a.ip());
    req.extensions_mut().insert(Caller::unauthenticated(ip));
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scoped(role: Role, accounts: &[&str]) -> Caller {
        Caller {
            key_name: Some(Arc::from("ops")),
            role,
            accounts: Some(Arc::new(accounts.iter().map(|a| a.to_string()).collect())),
            ip: None,
        }
    }

    #[test]
    fn roles_are_ordered_read_trade_admin() {
        let trader = scoped(Role::Trade, &["a"]);
        assert!(trader.require(Role::Read).is_ok());
        assert!(trader.require(Role::Trade).is_ok());
        let refused = trader.require(Role::Admin).unwrap_err();
        assert_eq!(refused.status.as_u16(), 403);
        assert!(refused.message.contains("ops"), "{}", refused.message);
    }

    #[test]
    fn a_scoped_caller_sees_only_its_accounts_and_others_are_not_found() {
        let reader = scoped(Role::Read, &["a"]);
        assert!(reader.sees("a"));
        assert!(!reader.sees("b"));
        assert_eq!(
            reader.require_account("b").unwrap_err().status.as_u16(),
            404
        );
        assert!(Caller::unauthenticated(None).sees("b"));
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        assert_eq!("trade".parse::<Role>(), Ok(Role::Trade));
        assert!("root".parse::<Role>().unwrap_err().contains("root"));
    }
}
