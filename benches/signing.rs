//! Cost of signing one AsterDEX request, per mode, and of verifying a wallet signature.
//!
//! Run with `cargo bench --bench signing` (criterion; `harness = false`). It times:
//! - `sign/hmac_market_order`: [`Credentials::sign`] in HMAC mode for a typical market
//!   order (symbol, side, type MARKET, quantity, newClientOrderId, newOrderRespType):
//!   form encoding plus HMAC-SHA256;
//! - `sign/wallet_market_order`: the same order in wallet-signer mode: sorted JSON, ABI
//!   encoding, two keccak256 and one secp256k1 ECDSA signature (RFC 6979);
//! - `recover_personal`: recovering the signer's address from such a signature, what
//!   the loopback fake venue does for every wallet-signed request.
//!
//! Keys are the published demonstration keys (HMAC: the Binance documentation example;
//! wallet: the AsterDEX worked example), never funds.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use vibex::config::AsterConfig;
use vibex::exchange::aster::sign::{
    personal_sign, recover_personal, wallet_hash, wallet_json, Credentials,
};
use vibex::secret::Secret;

const HMAC_API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const HMAC_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const USER: &str = "0x63DD5aCC6b1aa0f563956C0e534DD30B6dcF7C4e";
const SIGNER: &str = "0x21cF8Ae13Bb72632562c6Fff438652Ba1a151bb0";
const PRIVATE_KEY: &str = "0x4fd0a42218f3eae43a6ce26d22544e986139a01e5b34a62db53757ffca81bae1";

const TIMESTAMP_MS: i64 = 1_749_545_309_665;
const RECV_WINDOW_MS: u64 = 5_000;
const NONCE_US: u64 = 1_749_545_309_665_123;

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

fn credentials(cfg: AsterConfig) -> Credentials {
    match Credentials::from_config(&cfg) {
        Ok(Some(creds)) => creds,
        other => panic!("demo credentials must load: {other:?}"),
    }
}

fn market_order() -> Vec<(String, String)> {
    [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "MARKET"),
        ("quantity", "0.012"),
        ("newClientOrderId", "vx-acct1-0196f3a2c4d87b1e"),
        ("newOrderRespType", "RESULT"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn signing(c: &mut Criterion) {
    let hmac = credentials(AsterConfig {
        api_key: Secret::new(HMAC_API_KEY),
        api_secret: Secret::new(HMAC_SECRET),
        ..config()
    });
    let wallet = credentials(AsterConfig {
        user: Some(USER.into()),
        signer: Some(SIGNER.into()),
        private_key: Secret::new(PRIVATE_KEY),
        ..config()
    });
    let order = market_order();

    let mut group = c.benchmark_group("sign");
    group.bench_function("hmac_market_order", |b| {
        b.iter(|| {
            hmac.sign(
                black_box("/fapi/v1/order"),
                black_box(&order),
                black_box(TIMESTAMP_MS),
                RECV_WINDOW_MS,
                NONCE_US,
            )
        })
    });
    group.bench_function("wallet_market_order", |b| {
        b.iter(|| {
            wallet.sign(
                black_box("/fapi/v1/order"),
                black_box(&order),
                black_box(TIMESTAMP_MS),
                RECV_WINDOW_MS,
                black_box(NONCE_US),
            )
        })
    });
    group.finish();

    let Credentials::Wallet { user, signer, key } = &wallet else {
        panic!("expected wallet credentials");
    };
    let mut with_window = order.clone();
    with_window.push(("recvWindow".into(), RECV_WINDOW_MS.to_string()));
    with_window.push(("timestamp".into(), TIMESTAMP_MS.to_string()));
    let hash = wallet_hash(&wallet_json(&with_window), user, signer, NONCE_US);
    let signature = match personal_sign(key, &hash) {
        Ok(signature) => signature,
        Err(e) => panic!("demo key must sign: {e}"),
    };
    c.bench_function("recover_personal", |b| {
        b.iter(|| recover_personal(black_box(&hash), black_box(&signature)))
    });
}

criterion_group!(benches, signing);
criterion_main!(benches);
