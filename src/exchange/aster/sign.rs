//! Request signing for AsterDEX's signed endpoints, in both of the venue's modes.
//!
//! - **HMAC** (API key + secret, the Binance scheme): `recvWindow` and `timestamp` are
//!   appended to the parameters, the form-urlencoded string is signed with
//!   HMAC-SHA256 and `&signature=<hex>` is appended last; the key travels in the
//!   `X-MBX-APIKEY` header.
//! - **Wallet signer** (main wallet `user` + API wallet `signer` + the signer's
//!   secp256k1 key): the parameters become a compact, key-sorted JSON object of strings
//!   ([`wallet_json`]), which is ABI-encoded with `user`, `signer` and a microsecond
//!   `nonce` and hashed with keccak256 ([`wallet_hash`]), then signed as an Ethereum
//!   personal message ([`personal_sign`], EIP-191); the request goes to the `/fapi/v3/`
//!   twin of the endpoint and carries no API key header.
//!
//! Entry points: [`Credentials::from_config`] (which mode an account uses, validated at
//! boot) and [`Credentials::sign`] (one request in, a [`SignedRequest`] out). The steps
//! are public one by one ([`hmac_sha256_hex`], [`wallet_json`], [`wallet_hash`],
//! [`personal_sign`], [`recover_personal`]) so the loopback fake venue can verify what
//! the client sends, and tests can check each step against the published examples.
//!
//! Invariants:
//! - No key material ever reaches a `Debug` rendering or an error message: [`Secret`]
//!   masks itself, [`WalletKey`] prints only its address, [`SignedRequest`] masks its
//!   API key, and [`SignError`] / [`Credentials::from_config`] name fields, never values.
//! - HMAC signatures cover exactly the bytes sent before `&signature`.
//! - Wallet signatures are RFC 6979 deterministic and low-s, with `v` = 27 or 28.
//! - The signer adds `recvWindow`, `timestamp` (and in wallet mode `nonce`, `user`,
//!   `signer`) itself and refuses business parameters with those names.
//! - Nothing here panics on outside input (configuration, parameters, signatures).

use crate::config::AsterConfig;
use crate::secret::{Secret, MASK};
use hmac::{Hmac, Mac};
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use sha2::Sha256;
use sha3::{Digest, Keccak256};
use std::fmt;
use std::str::FromStr;
use url::form_urlencoded;

/// The EIP-191 prefix of a personal message whose body is a 32-byte hash.
const PERSONAL_MESSAGE_PREFIX: &[u8] = b"\x19Ethereum Signed Message:\n32";

/// Parameter names the HMAC signer appends itself.
const HMAC_RESERVED: &[&str] = &["recvWindow", "timestamp", "signature"];

/// Parameter names the wallet signer appends itself.
const WALLET_RESERVED: &[&str] = &[
    "recvWindow",
    "timestamp",
    "nonce",
    "user",
    "signer",
    "signature",
];

/// A 20-byte Ethereum address (the main wallet `user` or the API wallet `signer`).
///
/// Parsed from `0x` followed by 40 hex digits in any case (checksum case is accepted
/// but not verified); displayed as lowercase `0x…` hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address(pub [u8; 20]);

impl FromStr for Address {
    type Err = SignError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .ok_or_else(|| SignError::InvalidAddress("must start with 0x".to_string()))?;
        let count = digits.chars().count();
        if count != 40 {
            return Err(SignError::InvalidAddress(format!(
                "expected 40 hex digits after 0x, found {count} characters"
            )));
        }
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| {
            SignError::InvalidAddress("contains a character that is not a hex digit".to_string())
        })?;
        Ok(Address(bytes))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a request, a key, an address or a signature could not be used.
///
/// Messages describe the problem (a length, a bad character, a reserved name), never
/// the value: a private key pasted into the wrong field must not end up in a log line.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SignError {
    /// Not `0x` followed by 40 hex digits.
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    /// Not 64 hex digits (optionally after `0x`), or not a valid secp256k1 scalar.
    #[error("invalid private key: {0}")]
    InvalidPrivateKey(String),
    /// A wallet signature that is not `0x` + 65 bytes of hex with `v` 27/28 and low `s`,
    /// or that recovers to no key.
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    /// A business parameter uses a name the signer appends itself.
    #[error("parameter {0} is added by the signer and must not be passed in")]
    ReservedParameter(String),
    /// The ECDSA primitive refused (practically unreachable with a valid key).
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Lowercase hex HMAC-SHA256(`secret`, `payload`): the HMAC mode's `signature`.
pub fn hmac_sha256_hex(secret: &str, payload: &str) -> String {
    // HMAC takes keys of any length (longer ones are hashed first, RFC 2104), so
    // `new_from_slice` never fails; the `Err` arm would yield an empty signature, which
    // the venue refuses (fail closed) rather than a panic.
    Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map(|mut mac| {
            mac.update(payload.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        })
        .unwrap_or_default()
}

/// The secp256k1 signing key of an API wallet (the `signer`).
///
/// `Debug` prints `WalletKey(0x<address>)` and nothing of the key; the key bytes are
/// zeroed when dropped (k256's `SigningKey`).
#[derive(Clone)]
pub struct WalletKey {
    key: SigningKey,
    address: Address,
}

impl WalletKey {
    /// Reads a private key given as 64 hex digits, with or without `0x`; surrounding
    /// whitespace is ignored. Errors say what is wrong, never what the value was.
    pub fn from_secret(s: &Secret) -> Result<WalletKey, SignError> {
        let text = s.expose().trim();
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        let count = digits.chars().count();
        if count != 64 {
            return Err(SignError::InvalidPrivateKey(format!(
                "expected 64 hex digits (optionally after 0x), found {count} characters"
            )));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| {
            SignError::InvalidPrivateKey("contains a character that is not a hex digit".to_string())
        })?;
        let key = SigningKey::from_bytes(&bytes.into()).map_err(|_| {
            SignError::InvalidPrivateKey(
                "not a valid secp256k1 key (zero or not below the curve order)".to_string(),
            )
        });
        bytes.fill(0);
        let key = key?;
        let address = address_of(key.verifying_key());
        Ok(WalletKey { key, address })
    }

    /// The Ethereum address of this key: what the venue knows as the `signer`.
    pub fn address(&self) -> Address {
        self.address
    }
}

impl fmt::Debug for WalletKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WalletKey({})", self.address)
    }
}

/// The Ethereum address of a public key: the last 20 bytes of keccak256 of the
/// uncompressed point without its `0x04` tag.
fn address_of(key: &VerifyingKey) -> Address {
    let point = key.to_encoded_point(false);
    let coordinates = point.as_bytes().get(1..).unwrap_or_default();
    let digest = Keccak256::digest(coordinates);
    let mut address = [0u8; 20];
    address.copy_from_slice(&digest[12..]);
    Address(address)
}

/// Wallet step 1: the parameters as a compact JSON object, keys sorted by ASCII (byte)
/// order, every value a JSON string, no spaces. Keys and values are escaped by
/// `serde_json`; equal keys keep their given order.
pub fn wallet_json(params: &[(String, String)]) -> String {
    json_of(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// [`wallet_json`] over borrowed pairs, so [`Credentials::sign`] need not copy them.
fn json_of<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = pairs.collect();
    // `str` orders by bytes, which is ASCII order; the sort is stable.
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::with_capacity(
        2 + pairs
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum::<usize>(),
    );
    out.push('{');
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::from(*key).to_string());
        out.push(':');
        out.push_str(&serde_json::Value::from(*value).to_string());
    }
    out.push('}');
    out
}

/// One 32-byte ABI word holding an unsigned integer.
fn abi_uint(n: u64) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[24..].copy_from_slice(&n.to_be_bytes());
    word
}

/// One 32-byte ABI word holding an address (left-padded with zeros).
fn abi_address(address: &Address) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[12..].copy_from_slice(&address.0);
    word
}

/// Wallet steps 2-3: keccak256 of the standard Solidity ABI encoding of the tuple
/// `(string json, address user, address signer, uint256 nonce)`: four head words (the
/// string's offset 0x80, user, signer, nonce), then the string's length and its bytes
/// zero-padded to a multiple of 32.
pub fn wallet_hash(json: &str, user: &Address, signer: &Address, nonce: u64) -> [u8; 32] {
    let bytes = json.as_bytes();
    let mut hasher = Keccak256::new();
    hasher.update(abi_uint(4 * 32));
    hasher.update(abi_address(user));
    hasher.update(abi_address(signer));
    hasher.update(abi_uint(nonce));
    hasher.update(abi_uint(bytes.len() as u64));
    hasher.update(bytes);
    let padding = (32 - bytes.len() % 32) % 32;
    hasher.update(&[0u8; 32][..padding]);
    hasher.finalize().into()
}

/// keccak256 of the EIP-191 personal message wrapping `hash`.
fn personal_digest(hash: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(PERSONAL_MESSAGE_PREFIX);
    hasher.update(hash);
    hasher.finalize().into()
}

/// Wallet step 4: the EIP-191 personal-message signature of `hash` by `key`, as
/// `0x` + r + s + v (v = 27 or 28) in lowercase hex (132 characters). Deterministic
/// (RFC 6979) and low-s, as Ethereum requires.
pub fn personal_sign(key: &WalletKey, hash: &[u8; 32]) -> Result<String, SignError> {
    let digest = personal_digest(hash);
    let (signature, recovery) = key
        .key
        .sign_prehash_recoverable(&digest)
        .map_err(|e| SignError::Signing(e.to_string()))?;
    if recovery.is_x_reduced() {
        // r overflowed the curve order: Ethereum's v cannot express it (odds ~2^-128).
        return Err(SignError::Signing(
            "signature needs an x-reduced recovery id, which v cannot express".to_string(),
        ));
    }
    let v = 27 + u8::from(recovery.is_y_odd());
    let mut out = String::with_capacity(2 + 130);
    out.push_str("0x");
    out.push_str(&hex::encode(signature.to_bytes()));
    out.push_str(&hex::encode([v]));
    Ok(out)
}

/// The inverse of [`personal_sign`], for the loopback fake venue: the address whose key
/// produced `signature` over `hash` (the EIP-191 prefix is applied here). Refuses
/// signatures that are not 65 bytes of hex (`0x` optional), whose `v` is not 27/28, or
/// whose `s` is high (malleable, refused by Ethereum since EIP-2).
pub fn recover_personal(hash: &[u8; 32], signature: &str) -> Result<Address, SignError> {
    let digits = signature
        .strip_prefix("0x")
        .or_else(|| signature.strip_prefix("0X"))
        .unwrap_or(signature);
    let count = digits.chars().count();
    if count != 130 {
        return Err(SignError::InvalidSignature(format!(
            "expected 130 hex digits (r, s, v) after 0x, found {count} characters"
        )));
    }
    let mut bytes = [0u8; 65];
    hex::decode_to_slice(digits, &mut bytes).map_err(|_| {
        SignError::InvalidSignature("contains a character that is not a hex digit".to_string())
    })?;
    let (rs, v) = bytes.split_at(64);
    let y_odd = match v {
        [27] => false,
        [28] => true,
        [other] => {
            return Err(SignError::InvalidSignature(format!(
                "v must be 27 or 28, found {other}"
            )))
        }
        _ => {
            return Err(SignError::InvalidSignature(
                "missing the v byte".to_string(),
            ))
        }
    };
    let parsed = Signature::from_slice(rs).map_err(|_| {
        SignError::InvalidSignature("r or s is zero or not below the curve order".to_string())
    })?;
    if parsed.normalize_s().is_some() {
        return Err(SignError::InvalidSignature(
            "s is in the upper half of the curve order (malleable)".to_string(),
        ));
    }
    let key = VerifyingKey::recover_from_prehash(
        &personal_digest(hash),
        &parsed,
        RecoveryId::new(y_odd, false),
    )
    .map_err(|_| SignError::InvalidSignature("recovers to no public key".to_string()))?;
    Ok(address_of(&key))
}

/// How an account signs its requests, decided once from its configuration.
///
/// `Debug` never shows secrets: [`Secret`] masks itself and [`WalletKey`] shows only its
/// address.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// API key + secret: HMAC-SHA256 query signatures and the `X-MBX-APIKEY` header.
    Hmac {
        /// Sent in the `X-MBX-APIKEY` header.
        api_key: Secret,
        /// The HMAC key.
        api_secret: Secret,
    },
    /// Wallet signer: EIP-191 signatures by an API wallet acting for a main wallet.
    Wallet {
        /// The main wallet (`asterdex.user`).
        user: Address,
        /// The API wallet (`asterdex.signer`); `key.address()` equals it.
        signer: Address,
        /// The API wallet's key (`asterdex.private_key`).
        key: WalletKey,
    },
}

/// A configured (non-blank) optional text field, trimmed.
fn present(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// "`a` is missing" / "`a` and `b` are missing".
fn missing_phrase(fields: &[&str]) -> String {
    let verb = if fields.len() == 1 { "is" } else { "are" };
    format!("{} {verb} missing", fields.join(" and "))
}

impl Credentials {
    /// The account's signing mode from its `asterdex` section.
    ///
    /// Wallet mode when `user`, `signer` and `private_key` are all set (even if an API
    /// key is set too); HMAC mode when `api_key` and `api_secret` are set; `Ok(None)`
    /// when nothing at all is set (a paper account). Otherwise an error naming the
    /// missing or invalid `asterdex.<field>`; a private key that is not `signer`'s is
    /// an error naming both fields. No error contains a secret value.
    pub fn from_config(cfg: &AsterConfig) -> Result<Option<Credentials>, String> {
        let user = present(cfg.user.as_deref());
        let signer = present(cfg.signer.as_deref());
        let has_private_key = !cfg.private_key.is_empty();
        if let (Some(user), Some(signer), true) = (user, signer, has_private_key) {
            let user: Address = user
                .parse()
                .map_err(|e| format!("asterdex.user is not a wallet address: {e}"))?;
            let signer: Address = signer
                .parse()
                .map_err(|e| format!("asterdex.signer is not a wallet address: {e}"))?;
            let key = WalletKey::from_secret(&cfg.private_key)
                .map_err(|e| format!("asterdex.private_key cannot be used: {e}"))?;
            if key.address() != signer {
                return Err(format!(
                    "asterdex.private_key does not belong to asterdex.signer: the key's \
                     address is {}, asterdex.signer is {signer}",
                    key.address()
                ));
            }
            return Ok(Some(Credentials::Wallet { user, signer, key }));
        }

        let has_api_key = !cfg.api_key.is_empty();
        let has_api_secret = !cfg.api_secret.is_empty();
        if has_api_key && has_api_secret {
            return Ok(Some(Credentials::Hmac {
                api_key: Secret::new(cfg.api_key.expose().trim()),
                api_secret: Secret::new(cfg.api_secret.expose().trim()),
            }));
        }

        let wallet = [
            ("asterdex.user", user.is_some()),
            ("asterdex.signer", signer.is_some()),
            ("asterdex.private_key", has_private_key),
        ];
        if wallet.iter().any(|(_, set)| *set) {
            let missing: Vec<&str> = wallet
                .iter()
                .filter(|(_, set)| !set)
                .map(|(field, _)| *field)
                .collect();
            return Err(format!(
                "{} (wallet signing needs asterdex.user, asterdex.signer and \
                 asterdex.private_key)",
                missing_phrase(&missing)
            ));
        }
        if has_api_key || has_api_secret {
            let missing = if has_api_key {
                "asterdex.api_secret"
            } else {
                "asterdex.api_key"
            };
            return Err(format!(
                "{} (HMAC signing needs asterdex.api_key and asterdex.api_secret)",
                missing_phrase(&[missing])
            ));
        }
        Ok(None)
    }

    /// The mode's name for logs and status: `"hmac"` or `"wallet"`.
    pub fn mode(&self) -> &'static str {
        match self {
            Credentials::Hmac { .. } => "hmac",
            Credentials::Wallet { .. } => "wallet",
        }
    }

    /// Signs one request. `params` are the business parameters in sending order; the
    /// signer appends `recvWindow` and `timestamp` (and in wallet mode `nonce`, `user`,
    /// `signer`), so `params` must not contain those names (nor `signature`).
    ///
    /// - HMAC: the path is unchanged; `encoded` is the form-urlencoded parameters +
    ///   `recvWindow` + `timestamp`, then `&signature=<hex>` over exactly the bytes before
    ///   it; `api_key` is the value for the `X-MBX-APIKEY` header.
    /// - Wallet: `/fapi/v1/x` and `/fapi/v2/x` become `/fapi/v3/x` (other paths are
    ///   unchanged); the hash is [`wallet_hash`] of [`wallet_json`] of the parameters +
    ///   `recvWindow` + `timestamp`, with `nonce_us`; `encoded` is the form-urlencoded
    ///   parameters + `recvWindow` + `timestamp` + `nonce` + `user` + `signer` +
    ///   `signature`; no API key.
    pub fn sign(
        &self,
        path: &str,
        params: &[(String, String)],
        timestamp_ms: i64,
        recv_window_ms: u64,
        nonce_us: u64,
    ) -> Result<SignedRequest, SignError> {
        let reserved = match self {
            Credentials::Hmac { .. } => HMAC_RESERVED,
            Credentials::Wallet { .. } => WALLET_RESERVED,
        };
        if let Some((name, _)) = params
            .iter()
            .find(|(name, _)| reserved.contains(&name.as_str()))
        {
            return Err(SignError::ReservedParameter(name.clone()));
        }
        let recv_window = recv_window_ms.to_string();
        let timestamp = timestamp_ms.to_string();
        let signed = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain([
            ("recvWindow", recv_window.as_str()),
            ("timestamp", timestamp.as_str()),
        ]);
        let mut form = form_urlencoded::Serializer::new(String::with_capacity(256));
        form.extend_pairs(signed.clone());

        match self {
            Credentials::Hmac {
                api_key,
                api_secret,
            } => {
                let mut encoded = form.finish();
                let signature = hmac_sha256_hex(api_secret.expose(), &encoded);
                encoded.push_str("&signature=");
                encoded.push_str(&signature);
                Ok(SignedRequest {
                    path: path.to_string(),
                    encoded,
                    api_key: Some(api_key.expose().to_string()),
                })
            }
            Credentials::Wallet { user, signer, key } => {
                let json = json_of(signed);
                let hash = wallet_hash(&json, user, signer, nonce_us);
                let signature = personal_sign(key, &hash)?;
                form.append_pair("nonce", &nonce_us.to_string())
                    .append_pair("user", &user.to_string())
                    .append_pair("signer", &signer.to_string())
                    .append_pair("signature", &signature);
                Ok(SignedRequest {
                    path: v3_path(path),
                    encoded: form.finish(),
                    api_key: None,
                })
            }
        }
    }
}

/// The `/fapi/v3/` twin of a `/fapi/v1/` or `/fapi/v2/` path; other paths unchanged.
fn v3_path(path: &str) -> String {
    match path
        .strip_prefix("/fapi/v1/")
        .or_else(|| path.strip_prefix("/fapi/v2/"))
    {
        Some(rest) => format!("/fapi/v3/{rest}"),
        None => path.to_string(),
    }
}

/// A signed request, ready to send: the query string (GET, DELETE) or form body (POST,
/// PUT) is `encoded`, and `api_key`, when set, goes in the `X-MBX-APIKEY` header.
///
/// `Debug` masks the API key.
#[derive(Clone, PartialEq)]
pub struct SignedRequest {
    /// The path to call (rewritten to `/fapi/v3/` in wallet mode).
    pub path: String,
    /// Form-urlencoded parameters with the signature last.
    pub encoded: String,
    /// The `X-MBX-APIKEY` header value (HMAC mode only).
    pub api_key: Option<String>,
}

impl fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRequest")
            .field("path", &self.path)
            .field("encoded", &self.encoded)
            .field("api_key", &self.api_key.as_ref().map(|_| MASK))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Published demonstration values (asterdex-futures.md), never funds.
    const HMAC_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
    const HMAC_PAYLOAD: &str = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1\
                                &price=0.1&recvWindow=5000&timestamp=1499827319559";
    const HMAC_SIGNATURE: &str = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";
    const HMAC_API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";

    const USER: &str = "0x63DD5aCC6b1aa0f563956C0e534DD30B6dcF7C4e";
    const SIGNER: &str = "0x21cF8Ae13Bb72632562c6Fff438652Ba1a151bb0";
    const PRIVATE_KEY: &str = "0x4fd0a42218f3eae43a6ce26d22544e986139a01e5b34a62db53757ffca81bae1";
    const NONCE: u64 = 1_748_310_859_508_867;
    const TIMESTAMP: i64 = 1_749_545_309_665;
    const RECV_WINDOW: u64 = 50_000;
    const STEP1_JSON: &str = r#"{"positionSide":"BOTH","price":"0.28694","quantity":"190","recvWindow":"50000","side":"BUY","symbol":"SANDUSDT","timeInForce":"GTC","timestamp":"1749545309665","type":"LIMIT"}"#;
    const STEP3_KECCAK: &str = "9e0273fc91323f5cdbcb00c358be3dee2854afb2d3e4c68497364a2f27a377fc";
    const STEP4_SIGNATURE: &str = "0x0337dd720a21543b80ff861cd3c26646b75b3a6a4b5d45805d4c1d6ad6fc33e65f0722778dd97525466560c69fbddbe6874eb4ed6f5fa7e576e486d9b5da67f31b";

    /// A second, unrelated key (not the signer's) for the mismatch case.
    const OTHER_KEY: &str = "0x0000000000000000000000000000000000000000000000000000000000000001";

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The worked example's business parameters, in the order a client would send them.
    fn example_params() -> Vec<(String, String)> {
        pairs(&[
            ("symbol", "SANDUSDT"),
            ("positionSide", "BOTH"),
            ("type", "LIMIT"),
            ("side", "BUY"),
            ("timeInForce", "GTC"),
            ("quantity", "190"),
            ("price", "0.28694"),
        ])
    }

    fn example_with_window() -> Vec<(String, String)> {
        let mut params = example_params();
        params.push(("recvWindow".into(), RECV_WINDOW.to_string()));
        params.push(("timestamp".into(), TIMESTAMP.to_string()));
        params
    }

    fn addr(s: &str) -> Address {
        s.parse().unwrap()
    }

    fn demo_key() -> WalletKey {
        WalletKey::from_secret(&Secret::new(PRIVATE_KEY)).unwrap()
    }

    fn example_hash() -> [u8; 32] {
        wallet_hash(STEP1_JSON, &addr(USER), &addr(SIGNER), NONCE)
    }

    fn config() -> AsterConfig {
        AsterConfig {
            base_url: "https://fapi.asterdex.com".into(),
            api_key: Secret::default(),
            api_secret: Secret::default(),
            user: None,
            signer: None,
            private_key: Secret::default(),
        }
    }

    fn hmac_config() -> AsterConfig {
        AsterConfig {
            api_key: Secret::new(HMAC_API_KEY),
            api_secret: Secret::new(HMAC_SECRET),
            ..config()
        }
    }

    fn wallet_config() -> AsterConfig {
        AsterConfig {
            user: Some(USER.into()),
            signer: Some(SIGNER.into()),
            private_key: Secret::new(PRIVATE_KEY),
            ..config()
        }
    }

    /// The error of `from_config`, checked to contain none of the configured secrets
    /// (nor the private key without its 0x).
    fn config_error(cfg: &AsterConfig) -> String {
        let err = Credentials::from_config(cfg).unwrap_err();
        for secret in [&cfg.api_key, &cfg.api_secret, &cfg.private_key] {
            let value = secret.expose().trim();
            if !value.is_empty() {
                assert!(!err.contains(value), "error leaks a secret: {err}");
                let bare = value.trim_start_matches("0x");
                assert!(!err.contains(bare), "error leaks a secret: {err}");
            }
        }
        err
    }

    #[test]
    fn hmac_matches_the_published_binance_vector() {
        assert_eq!(hmac_sha256_hex(HMAC_SECRET, HMAC_PAYLOAD), HMAC_SIGNATURE);
    }

    #[test]
    fn wallet_step1_json_matches_the_worked_example() {
        assert_eq!(wallet_json(&example_with_window()), STEP1_JSON);
    }

    #[test]
    fn wallet_json_sorts_by_ascii_and_escapes_values() {
        let json = wallet_json(&pairs(&[
            ("b", "say \"hi\"\n"),
            ("a", "é/\\"),
            ("B", ""),
            ("a_", "1"),
        ]));
        assert_eq!(json, r#"{"B":"","a":"é/\\","a_":"1","b":"say \"hi\"\n"}"#);
        assert_eq!(wallet_json(&[]), "{}");
    }

    #[test]
    fn wallet_step3_keccak_matches_the_worked_example() {
        assert_eq!(hex::encode(example_hash()), STEP3_KECCAK);
    }

    #[test]
    fn wallet_step4_signature_matches_the_worked_example() {
        let signature = personal_sign(&demo_key(), &example_hash()).unwrap();
        assert_eq!(signature, STEP4_SIGNATURE);
    }

    #[test]
    fn recover_personal_gives_the_worked_example_signer() {
        let recovered = recover_personal(&example_hash(), STEP4_SIGNATURE).unwrap();
        assert_eq!(recovered, addr(SIGNER));
        // Without 0x and in upper case it is the same signature.
        let bare = STEP4_SIGNATURE.trim_start_matches("0x").to_uppercase();
        assert_eq!(
            recover_personal(&example_hash(), &bare).unwrap(),
            addr(SIGNER)
        );
        // Another hash recovers to someone else.
        assert_ne!(
            recover_personal(&[7u8; 32], STEP4_SIGNATURE).unwrap(),
            addr(SIGNER)
        );
    }

    #[test]
    fn recover_personal_refuses_bad_hex_length_v_and_high_s() {
        let hash = example_hash();
        let short = &STEP4_SIGNATURE[..STEP4_SIGNATURE.len() - 2];
        assert!(matches!(
            recover_personal(&hash, short),
            Err(SignError::InvalidSignature(m)) if m.contains("130 hex digits")
        ));
        let not_hex = format!("{}zz", short);
        assert!(matches!(
            recover_personal(&hash, &not_hex),
            Err(SignError::InvalidSignature(m)) if m.contains("not a hex digit")
        ));
        let v_zero = format!("{}00", short);
        assert!(matches!(
            recover_personal(&hash, &v_zero),
            Err(SignError::InvalidSignature(m)) if m.contains("v must be 27 or 28, found 0")
        ));
        // s' = n - s with the other v is the same point, but malleable: refused.
        let sig = hex::decode(&STEP4_SIGNATURE[2..]).unwrap();
        let low = Signature::from_slice(&sig[..64]).unwrap();
        let s: k256::Scalar = *low.s();
        let high = Signature::from_scalars(low.r().to_bytes(), (-s).to_bytes()).unwrap();
        let high_hex = format!("0x{}1c", hex::encode(high.to_bytes()));
        assert!(matches!(
            recover_personal(&hash, &high_hex),
            Err(SignError::InvalidSignature(m)) if m.contains("malleable")
        ));
    }

    #[test]
    fn wallet_key_address_is_the_published_signer() {
        assert_eq!(demo_key().address(), addr(SIGNER));
        let bare = PRIVATE_KEY.trim_start_matches("0x");
        let key = WalletKey::from_secret(&Secret::new(format!(" {bare}\n"))).unwrap();
        assert_eq!(key.address(), addr(SIGNER));
        assert_eq!(
            format!("{key:?}"),
            format!("WalletKey({})", SIGNER.to_lowercase())
        );
    }

    #[test]
    fn wallet_key_refuses_bad_keys_without_echoing_them() {
        let cases = [
            (&PRIVATE_KEY[..PRIVATE_KEY.len() - 1], "64 hex digits"),
            (
                "0x4fd0a42218f3eae43a6ce26d22544e986139a01e5b34a62db53757ffca81baeg",
                "not a hex digit",
            ),
            (
                "0x0000000000000000000000000000000000000000000000000000000000000000",
                "secp256k1",
            ),
            (
                "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                "secp256k1",
            ),
        ];
        for (value, expected) in cases {
            let err = WalletKey::from_secret(&Secret::new(value))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains(value.trim_start_matches("0x")), "{err}");
        }
    }

    #[test]
    fn address_parses_any_case_and_displays_lowercase() {
        let a = addr(SIGNER);
        assert_eq!(a.to_string(), SIGNER.to_lowercase());
        assert_eq!(format!("{a:?}"), SIGNER.to_lowercase());
        assert_eq!(addr(&SIGNER.to_uppercase().replacen("0X", "0x", 1)), a);
        assert_eq!(addr(&SIGNER.to_lowercase()), a);
    }

    #[test]
    fn address_parse_errors_name_the_problem() {
        let err = |s: &str| s.parse::<Address>().unwrap_err().to_string();
        assert!(err("21cF8Ae13Bb72632562c6Fff438652Ba1a151bb0").contains("must start with 0x"));
        assert!(err("0x21cF8Ae13Bb72632562c6Fff438652Ba1a151bb")
            .contains("expected 40 hex digits after 0x, found 39"));
        assert!(err("0x21cF8Ae13Bb72632562c6Fff438652Ba1a151bb01").contains("found 41"));
        assert!(err("0x21cF8Ae13Bb72632562c6Fff438652Ba1a151bg0").contains("not a hex digit"));
        assert!(err("").contains("must start with 0x"));
    }

    #[test]
    fn from_config_with_nothing_set_is_no_credentials() {
        assert!(Credentials::from_config(&config()).unwrap().is_none());
    }

    #[test]
    fn from_config_with_key_and_secret_is_hmac() {
        let creds = Credentials::from_config(&hmac_config()).unwrap().unwrap();
        assert_eq!(creds.mode(), "hmac");
        match creds {
            Credentials::Hmac {
                api_key,
                api_secret,
            } => {
                assert_eq!(api_key.expose(), HMAC_API_KEY);
                assert_eq!(api_secret.expose(), HMAC_SECRET);
            }
            other => panic!("expected HMAC, got {other:?}"),
        }
    }

    #[test]
    fn from_config_with_user_signer_and_key_is_wallet_even_with_an_api_key() {
        for cfg in [
            wallet_config(),
            AsterConfig {
                api_key: Secret::new(HMAC_API_KEY),
                api_secret: Secret::new(HMAC_SECRET),
                ..wallet_config()
            },
        ] {
            let creds = Credentials::from_config(&cfg).unwrap().unwrap();
            assert_eq!(creds.mode(), "wallet");
            match creds {
                Credentials::Wallet { user, signer, key } => {
                    assert_eq!(user, addr(USER));
                    assert_eq!(signer, addr(SIGNER));
                    assert_eq!(key.address(), addr(SIGNER));
                }
                other => panic!("expected wallet, got {other:?}"),
            }
        }
    }

    #[test]
    fn from_config_names_the_missing_hmac_field() {
        let err = config_error(&AsterConfig {
            api_secret: Secret::default(),
            ..hmac_config()
        });
        assert_eq!(
            err,
            "asterdex.api_secret is missing (HMAC signing needs asterdex.api_key and \
             asterdex.api_secret)"
        );
        let err = config_error(&AsterConfig {
            api_key: Secret::new("  "),
            ..hmac_config()
        });
        assert!(err.starts_with("asterdex.api_key is missing"), "{err}");
    }

    #[test]
    fn from_config_names_the_missing_wallet_fields() {
        let err = config_error(&AsterConfig {
            private_key: Secret::default(),
            ..wallet_config()
        });
        assert_eq!(
            err,
            "asterdex.private_key is missing (wallet signing needs asterdex.user, \
             asterdex.signer and asterdex.private_key)"
        );
        let err = config_error(&AsterConfig {
            user: Some(" ".into()),
            signer: None,
            ..wallet_config()
        });
        assert!(
            err.starts_with("asterdex.user and asterdex.signer are missing"),
            "{err}"
        );
    }

    #[test]
    fn from_config_names_the_invalid_wallet_field() {
        let err = config_error(&AsterConfig {
            user: Some("0x1234".into()),
            ..wallet_config()
        });
        assert!(
            err.starts_with("asterdex.user is not a wallet address"),
            "{err}"
        );
        let err = config_error(&AsterConfig {
            signer: Some(SIGNER.trim_start_matches("0x").into()),
            ..wallet_config()
        });
        assert!(
            err.starts_with("asterdex.signer is not a wallet address"),
            "{err}"
        );
        let err = config_error(&AsterConfig {
            private_key: Secret::new(&PRIVATE_KEY[..40]),
            ..wallet_config()
        });
        assert!(
            err.starts_with("asterdex.private_key cannot be used"),
            "{err}"
        );
        let err = config_error(&AsterConfig {
            private_key: Secret::new(format!("{}x", &PRIVATE_KEY[..65])),
            ..wallet_config()
        });
        assert!(err.contains("not a hex digit"), "{err}");
    }

    #[test]
    fn from_config_refuses_a_key_of_another_signer_without_printing_it() {
        let err = config_error(&AsterConfig {
            private_key: Secret::new(OTHER_KEY),
            ..wallet_config()
        });
        assert!(
            err.starts_with("asterdex.private_key does not belong to asterdex.signer"),
            "{err}"
        );
        assert!(err.contains(&SIGNER.to_lowercase()), "{err}");
    }

    #[test]
    fn sign_hmac_appends_the_signature_of_the_exact_prefix() {
        let creds = Credentials::from_config(&hmac_config()).unwrap().unwrap();
        let params = pairs(&[
            ("symbol", "LTCBTC"),
            ("side", "BUY"),
            ("type", "LIMIT"),
            ("timeInForce", "GTC"),
            ("quantity", "1"),
            ("price", "0.1"),
        ]);
        let signed = creds
            .sign("/fapi/v1/order", &params, 1_499_827_319_559, 5000, 42)
            .unwrap();
        assert_eq!(signed.path, "/fapi/v1/order");
        assert_eq!(signed.api_key.as_deref(), Some(HMAC_API_KEY));
        // The published vector, end to end.
        assert_eq!(
            signed.encoded,
            format!("{HMAC_PAYLOAD}&signature={HMAC_SIGNATURE}")
        );
        let (prefix, signature) = signed.encoded.rsplit_once("&signature=").unwrap();
        assert_eq!(signature, hmac_sha256_hex(HMAC_SECRET, prefix));

        // Values that need escaping are signed exactly as sent.
        let odd = pairs(&[("newClientOrderId", "a b/c:d+e")]);
        let signed = creds.sign("/fapi/v1/order", &odd, 1, 5000, 0).unwrap();
        assert!(signed
            .encoded
            .starts_with("newClientOrderId=a+b%2Fc%3Ad%2Be&recvWindow=5000&timestamp=1&"));
        let (prefix, signature) = signed.encoded.rsplit_once("&signature=").unwrap();
        assert_eq!(signature, hmac_sha256_hex(HMAC_SECRET, prefix));
    }

    #[test]
    fn sign_wallet_reproduces_the_worked_example_on_the_v3_path() {
        let creds = Credentials::from_config(&wallet_config()).unwrap().unwrap();
        let signed = creds
            .sign(
                "/fapi/v1/order",
                &example_params(),
                TIMESTAMP,
                RECV_WINDOW,
                NONCE,
            )
            .unwrap();
        assert_eq!(signed.path, "/fapi/v3/order");
        assert_eq!(signed.api_key, None);

        let sent: Vec<(String, String)> = form_urlencoded::parse(signed.encoded.as_bytes())
            .into_owned()
            .collect();
        let names: Vec<&str> = sent.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "symbol",
                "positionSide",
                "type",
                "side",
                "timeInForce",
                "quantity",
                "price",
                "recvWindow",
                "timestamp",
                "nonce",
                "user",
                "signer",
                "signature"
            ]
        );
        let value = |name: &str| {
            sent.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(value("signature"), STEP4_SIGNATURE);

        // What a venue does: rebuild the hash from what it received and recover.
        let business: Vec<(String, String)> = sent
            .iter()
            .filter(|(k, _)| !["nonce", "user", "signer", "signature"].contains(&k.as_str()))
            .cloned()
            .collect();
        let hash = wallet_hash(
            &wallet_json(&business),
            &addr(&value("user")),
            &addr(&value("signer")),
            value("nonce").parse().unwrap(),
        );
        assert_eq!(
            recover_personal(&hash, &value("signature")).unwrap(),
            addr(SIGNER)
        );
    }

    #[test]
    fn sign_wallet_rewrites_only_v1_and_v2_fapi_paths() {
        let creds = Credentials::from_config(&wallet_config()).unwrap().unwrap();
        for (path, expected) in [
            ("/fapi/v1/order", "/fapi/v3/order"),
            ("/fapi/v2/account", "/fapi/v3/account"),
            ("/fapi/v3/positionRisk", "/fapi/v3/positionRisk"),
            ("/fapi/v1", "/fapi/v1"),
            ("/api/v1/order", "/api/v1/order"),
        ] {
            let signed = creds.sign(path, &[], 1, 5000, 2).unwrap();
            assert_eq!(signed.path, expected);
        }
    }

    #[test]
    fn sign_refuses_parameters_the_signer_adds() {
        let hmac = Credentials::from_config(&hmac_config()).unwrap().unwrap();
        let wallet = Credentials::from_config(&wallet_config()).unwrap().unwrap();
        for name in ["timestamp", "recvWindow", "signature"] {
            let params = pairs(&[("symbol", "BTCUSDT"), (name, "1")]);
            for creds in [&hmac, &wallet] {
                assert_eq!(
                    creds.sign("/fapi/v1/order", &params, 1, 5000, 2),
                    Err(SignError::ReservedParameter(name.to_string()))
                );
            }
        }
        for name in ["nonce", "user", "signer"] {
            let params = pairs(&[(name, "1")]);
            assert!(wallet.sign("/fapi/v1/order", &params, 1, 5000, 2).is_err());
            assert!(hmac.sign("/fapi/v1/order", &params, 1, 5000, 2).is_ok());
        }
    }

    #[test]
    fn debug_renderings_never_show_secrets() {
        let hmac = Credentials::from_config(&hmac_config()).unwrap().unwrap();
        let wallet = Credentials::from_config(&wallet_config()).unwrap().unwrap();
        let signed = hmac.sign("/fapi/v1/order", &[], 1, 5000, 2).unwrap();
        let rendered = format!("{hmac:?} {wallet:?} {signed:?} {:?}", demo_key());
        for secret in [
            HMAC_API_KEY,
            HMAC_SECRET,
            PRIVATE_KEY.trim_start_matches("0x"),
        ] {
            assert!(!rendered.contains(secret), "{rendered}");
        }
        assert!(rendered.contains("api_key: Some(\"***\")"), "{rendered}");
    }
}
