//! `vibex keys new`: a fresh API key and the configuration entry that admits it.
//!
//! Entry point: [`new_key`]. Invariants: the key comes from the operating system's
//! CSPRNG (`vx_` + 32 random bytes in hex); the entry holds only its SHA-256, so the key
//! itself exists only in the output of this one command; name, role and accounts are
//! checked exactly as the configuration checks them (whether the accounts exist is
//! checked when the daemon loads the entry).

use crate::api::access::Role;
use crate::api::auth::{generate_key, key_digest};

/// A fresh key and its `api.keys` entry.
#[derive(Debug)]
pub struct NewKey {
    /// The key, to hand to the client once; never stored.
    pub key: String,
    /// The YAML list item to paste under `api:` → `keys:` (indented for that place).
    pub yaml_item: String,
}

/// Makes a key named `name` with `role`, seeing `accounts` (comma- or space-separated
/// ids) or every account when `None`. The error names the flag that is wrong.
pub fn new_key(name: &str, role: &str, accounts: Option<&str>) -> Result<NewKey, String> {
    let name = name.trim();
    crate::config::check_key_name(name).map_err(|e| format!("--name: {e}"))?;
    let role: Role = role
        .trim()
        .to_ascii_lowercase()
        .parse()
        .map_err(|e| format!("--role: {e}"))?;
    let accounts = accounts
        .map(crate::config::parse_key_accounts)
        .transpose()
        .map_err(|e| format!("--accounts: {e}"))?;
    let key = generate_key()?;
    let mut yaml_item = format!(
        "    - name: {name}\n      role: {}\n      key_sha256: {}\n",
        role.as_str(),
        hex::encode(key_digest(&key))
    );
    if let Some(ids) = accounts {
        yaml_item.push_str(&format!("      accounts: [{}]\n", ids.join(", ")));
    }
    Ok(NewKey { key, yaml_item })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_holds_the_hash_of_the_key_and_never_the_key() {
        let made = new_key("ops", "Trade", Some("a1,b-2")).unwrap();
        let digest = hex::encode(key_digest(&made.key));
        assert!(made.yaml_item.contains(&digest), "{}", made.yaml_item);
        assert!(!made.yaml_item.contains(&made.key));
        assert!(made.yaml_item.contains("role: trade"));
        assert!(made.yaml_item.contains("accounts: [a1, b-2]"));
    }

    #[test]
    fn bad_flags_are_named() {
        assert!(new_key("bad name", "read", None)
            .unwrap_err()
            .starts_with("--name:"));
        assert!(new_key("ops", "root", None)
            .unwrap_err()
            .starts_with("--role:"));
        assert!(new_key("ops", "read", Some("a1,a1"))
            .unwrap_err()
            .starts_with("--accounts:"));
    }
}
