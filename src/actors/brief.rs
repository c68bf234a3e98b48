//! What `/status` counts for every account without asking its actors.
//!
//! Entry point: [`AccountBrief`]. Invariant: the Account actor is the only writer (its
//! state on every change, and whether it reports an error); the Supervisor reads it when
//! it summarises thousands of accounts, instead of sending each account three messages
//! per request. One brief lives as long as the account's slot, across restarts of its
//! tree.

use std::sync::Mutex;

/// An account's state and whether it reports an error, shared between its Account actor
/// (writer) and the Supervisor (reader).
#[derive(Debug)]
pub struct AccountBrief(Mutex<Brief>);

/// One reading of an [`AccountBrief`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Brief {
    /// The account's state as its status reports it (`starting`, `active`, ...).
    pub state: &'static str,
    /// Its last cycle failed or was skipped, or it reports another error.
    pub error: bool,
}

impl Default for AccountBrief {
    fn default() -> Self {
        AccountBrief(Mutex::new(Brief {
            state: "starting",
            error: false,
        }))
    }
}

impl AccountBrief {
    /// The current reading.
    pub fn get(&self) -> Brief {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the state.
    pub fn set_state(&self, state: &'static str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).state = state;
    }

    /// Sets whether the account reports an error.
    pub fn set_error(&self, error: bool) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).error = error;
    }
}
