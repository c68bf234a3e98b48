//! Secrets (API keys, API secrets, private keys, bearer tokens, database passwords).
//!
//! Invariant: a [`Secret`] never prints its value. `Debug`, `Display` and `Serialize`
//! all show [`MASK`]; only [`Secret::expose`] hands the value out, and only code that
//! sends it to the venue or the model calls it. Every secret value loaded from the
//! configuration is also registered with the log masker (`telemetry`) so that a value
//! that leaks into a free-text message (an error body, a URL) is still masked.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What a masked secret looks like wherever it would have appeared.
pub const MASK: &str = "***";

/// A configuration value that must never reach a log line, an API response or an error.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The real value, for the one place that must send it (a signature, a header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no value was configured (an empty string counts as absent).
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// A masked rendering that keeps nothing of the value but whether it is set.
    pub fn masked(&self) -> &'static str {
        if self.is_empty() {
            "(not set)"
        } else {
            MASK
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.masked())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.masked())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.masked())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("sk-or-v1-abcdef");
        assert_eq!(format!("{s}"), MASK);
        assert_eq!(format!("{s:?}"), MASK);
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{MASK}\""));
        assert_eq!(s.expose(), "sk-or-v1-abcdef");
        assert_eq!(Secret::default().masked(), "(not set)");
    }
}
