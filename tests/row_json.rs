//! The busiest lists (`/orders`, `/trades`, `/positions`) are written as JSON straight
//! from PostgreSQL's binary rows (`vibex::api::row_json`). On a real PostgreSQL, rows of every
//! shape — NULL and set optional columns, numerics of every scale and sign up to what a
//! `Decimal` holds, text that needs escaping, timestamps of every precision, before 1970,
//! in year 1 and beyond 9999 — read the same JSON, byte for byte, from the wire as from
//! the model structs (`api::encode`, itself byte-equal to serde), over a blocking
//! connection and over the API's async one. What a `Decimal` or chrono cannot hold is an
//! error on both paths, never a panic or a different number.

mod common;

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use diesel_async::AsyncConnection;
use vibex::api::{encode, row_json};
use vibex::db::models::{FillRow, OrderRow, PositionRow};
use vibex::db::queries::{self, ListFilter};

const NUMERICS: &[&str] = &[
    "0",
    "0.0000",
    "-0.00000001",
    "67.31380000",
    "100000",
    "1",
    "-1.5",
    "0.5",
    "123456.7890",
    "-123456789012345678.1234567890",
    "79228162514264337593543950335",
    "-79228162514264337593543950335",
    "0.0000000000000000000000000001",
    "9999999999999999999999999999",
    "99990000.00010000",
    "10000",
    "0.0001",
    "1000000000000",
    "3.14159265358979323846264338",
];

const TEXTS: &[&str] = &[
    "BTCUSDT",
    "",
    "quote \" and backslash \\",
    "new\nline\ttab\u{1}ctrl\u{1f}",
    "é日本🚀",
    "</script>",
    "\u{7f}del",
];

const TIMES: &[&str] = &[
    "2026-12-03 15:07:09+00",
    "2026-12-03 15:07:09.1+00",
    "2026-12-03 15:07:09.123+00",
    "2026-12-03 15:07:09.123456+00",
    "2026-12-03 15:07:09.000001+00",
    "2026-12-03 15:07:09.12+05:30",
    "1969-12-31 23:59:59.5+00",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
    "12345-01-01 00:00:00+00",
    "0044-03-15 12:00:00+00 BC",
    "2000-01-01 00:00:00+00",
];

fn pick<'a>(list: &[&'a str], i: usize) -> &'a str {
    list[i % list.len()]
}

/// Every `every`-th row (from `phase`) has NULL here.
fn maybe(v: &str, i: usize, every: usize, phase: usize) -> Option<String> {
    (i % every != phase).then(|| v.to_string())
}

/// A uuid of its own for row `i` of `account`, column `kind`.
fn uuid(account: &str, i: usize, kind: u8) -> String {
    let salt = account
        .bytes()
        .fold(0u16, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
    format!("{i:08x}-{salt:04x}-4000-8000-{kind:012x}")
}

type T = Nullable<Text>;

fn seed(conn: &mut PgConnection, account_id: &str, rows: usize, numerics: &[&str]) {
    for i in 0..rows {
        let n = |k: usize| pick(numerics, i + k);
        let t = |k: usize| pick(TEXTS, i + k);
        let time = |k: usize| pick(TIMES, i + k);
        diesel::sql_query(
            "INSERT INTO orders (id, account_id, cycle_id, decision_id, client_order_id, \
             venue_order_id, symbol, side, order_type, quantity, price, stop_price, reduce_only, \
             close_position, status, filled_quantity, avg_fill_price, reject_reason, created_at, \
             updated_at) VALUES ($1::uuid, $2, $3::uuid, $4::uuid, $5, $6, $7, $8, $9, \
             $10::numeric, $11::numeric, $12::numeric, $13::boolean, $14::boolean, $15, \
             $16::numeric, $17::numeric, $18, $19::timestamptz, $20::timestamptz)",
        )
        .bind::<T, _>(Some(uuid(account_id, i, 1)))
        .bind::<T, _>(Some(account_id))
        .bind::<T, _>(maybe(&uuid(account_id, i, 2), i, 3, 0))
        .bind::<T, _>(maybe(&uuid(account_id, i, 3), i, 4, 1))
        .bind::<T, _>(Some(format!("{account_id}-{i}-{}", t(0))))
        .bind::<T, _>(maybe(t(1), i, 2, 0))
        .bind::<T, _>(Some(t(2)))
        .bind::<T, _>(Some(if i % 2 == 0 { "BUY" } else { "SELL" }))
        .bind::<T, _>(Some(t(3)))
        .bind::<T, _>(maybe(n(0), i, 5, 2))
        .bind::<T, _>(maybe(n(1), i, 3, 1))
        .bind::<T, _>(maybe(n(2), i, 2, 1))
        .bind::<T, _>(Some(if i % 3 == 0 { "true" } else { "false" }))
        .bind::<T, _>(Some(if i % 5 == 0 { "true" } else { "false" }))
        .bind::<T, _>(Some(t(4)))
        .bind::<T, _>(Some(n(3)))
        .bind::<T, _>(maybe(n(4), i, 4, 0))
        .bind::<T, _>(maybe(t(5), i, 3, 2))
        .bind::<T, _>(Some(time(0)))
        .bind::<T, _>(Some(time(1)))
        .execute(conn)
        .unwrap_or_else(|e| panic!("order {i}: {e}"));
        diesel::sql_query(
            "INSERT INTO fills (id, ts, account_id, cycle_id, order_id, client_order_id, symbol, \
             side, quantity, price, fee, realized_pnl, reason, venue_trade_id) VALUES ($1::uuid, \
             $2::timestamptz, $3, $4::uuid, $5::uuid, $6, $7, $8, $9::numeric, $10::numeric, \
             $11::numeric, $12::numeric, $13, $14)",
        )
        .bind::<T, _>(Some(uuid(account_id, i, 4)))
        .bind::<T, _>(Some(time(2)))
        .bind::<T, _>(Some(account_id))
        .bind::<T, _>(maybe(&uuid(account_id, i, 5), i, 2, 1))
        .bind::<T, _>(maybe(&uuid(account_id, i, 6), i, 3, 0))
        .bind::<T, _>(Some(t(0)))
        .bind::<T, _>(Some(t(1)))
        .bind::<T, _>(Some(if i % 2 == 0 { "BUY" } else { "SELL" }))
        .bind::<T, _>(Some(n(5)))
        .bind::<T, _>(Some(n(6)))
        .bind::<T, _>(Some(n(7)))
        .bind::<T, _>(Some(n(8)))
        .bind::<T, _>(Some(t(2)))
        .bind::<T, _>(maybe(t(3), i, 2, 0))
        .execute(conn)
        .unwrap_or_else(|e| panic!("fill {i}: {e}"));
        // One open position per symbol: the symbol carries the row's number.
        diesel::sql_query(
            "INSERT INTO positions (id, account_id, symbol, side, quantity, entry_price, leverage, \
             margin, tp_price, sl_price, exit_plan, mark_price, unrealized_pnl, realized_pnl, \
             status, opened_at, closed_at, opened_cycle_id, updated_at, liquidation_price, origin, \
             close_reason) VALUES ($1::uuid, $2, $3, $4, $5::numeric, $6::numeric, $7::integer, \
             $8::numeric, $9::numeric, $10::numeric, $11, $12::numeric, $13::numeric, \
             $14::numeric, $15, $16::timestamptz, $17::timestamptz, $18::uuid, $19::timestamptz, \
             $20::numeric, $21, $22)",
        )
        .bind::<T, _>(Some(uuid(account_id, i, 7)))
        .bind::<T, _>(Some(account_id))
        .bind::<T, _>(Some(format!("{}-{i}", t(0))))
        .bind::<T, _>(Some(if i % 2 == 0 { "long" } else { "short" }))
        .bind::<T, _>(Some(n(9)))
        .bind::<T, _>(Some(n(10)))
        .bind::<T, _>(Some(["1", "125", "20", "-3"][i % 4]))
        .bind::<T, _>(Some(n(11)))
        .bind::<T, _>(maybe(n(12), i, 2, 0))
        .bind::<T, _>(maybe(n(13), i, 3, 0))
        .bind::<T, _>(Some(t(4)))
        .bind::<T, _>(maybe(n(14), i, 2, 1))
        .bind::<T, _>(Some(n(15)))
        .bind::<T, _>(Some(n(16)))
        .bind::<T, _>(Some(if i % 2 == 0 { "open" } else { "closed" }))
        .bind::<T, _>(Some(time(3)))
        .bind::<T, _>(maybe(time(4), i, 2, 0))
        .bind::<T, _>(maybe(&uuid(account_id, i, 8), i, 3, 1))
        .bind::<T, _>(Some(time(5)))
        .bind::<T, _>(maybe(n(17), i, 2, 0))
        .bind::<T, _>(Some(if i % 3 == 0 { "adopted" } else { "vibex" }))
        .bind::<T, _>(maybe(
            ["take_profit", "stop_loss", "decision"][i % 3],
            i,
            2,
            0,
        ))
        .execute(conn)
        .unwrap_or_else(|e| panic!("position {i}: {e}"));
    }
}

fn filter(account_id: &str, limit: i64) -> ListFilter {
    ListFilter {
        account_id: Some(account_id.into()),
        limit,
        ..ListFilter::default()
    }
}

/// The three pages of `account_id` through the model structs, or the error.
fn model_pages(conn: &mut PgConnection, f: &ListFilter) -> [Result<Vec<u8>, String>; 3] {
    let e = |e: diesel::result::Error| e.to_string();
    [
        queries::list_orders(conn, f)
            .map(|r| encode::page(&r, f.limit))
            .map_err(e),
        queries::list_fills(conn, f)
            .map(|r| encode::page(&r, f.limit))
            .map_err(e),
        queries::list_positions(conn, f)
            .map(|r| encode::page(&r, f.limit))
            .map_err(e),
    ]
}

/// The three pages of `account_id` written from the wire, on a blocking connection.
fn wire_pages(conn: &mut PgConnection, f: &ListFilter) -> [Result<Vec<u8>, String>; 3] {
    let e = |e: diesel::result::Error| e.to_string();
    [
        queries::orders_page(row_json::columns::<OrderRow>(), f)
            .load::<row_json::Json<OrderRow>>(conn)
            .map(|r| row_json::page(&r, f.limit))
            .map_err(e),
        queries::fills_page(row_json::columns::<FillRow>(), f)
            .load::<row_json::Json<FillRow>>(conn)
            .map(|r| row_json::page(&r, f.limit))
            .map_err(e),
        queries::positions_page(row_json::columns::<PositionRow>(), f)
            .load::<row_json::Json<PositionRow>>(conn)
            .map(|r| row_json::page(&r, f.limit))
            .map_err(e),
    ]
}

/// The same on the async connection the API's HTTP workers use.
fn async_wire_pages(url: &str, f: &ListFilter) -> [Result<Vec<u8>, String>; 3] {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn = diesel_async::AsyncPgConnection::establish(url)
            .await
            .unwrap();
        let e = |e: diesel::result::Error| e.to_string();
        [
            diesel_async::RunQueryDsl::load(
                queries::orders_page(row_json::columns::<OrderRow>(), f),
                &mut conn,
            )
            .await
            .map(|r: Vec<row_json::Json<OrderRow>>| row_json::page(&r, f.limit))
            .map_err(e),
            diesel_async::RunQueryDsl::load(
                queries::fills_page(row_json::columns::<FillRow>(), f),
                &mut conn,
            )
            .await
            .map(|r: Vec<row_json::Json<FillRow>>| row_json::page(&r, f.limit))
            .map_err(e),
            diesel_async::RunQueryDsl::load(
                queries::positions_page(row_json::columns::<PositionRow>(), f),
                &mut conn,
            )
            .await
            .map(|r: Vec<row_json::Json<PositionRow>>| row_json::page(&r, f.limit))
            .map_err(e),
        ]
    })
}

fn setup() -> (common::pg::TestDb, PgConnection) {
    let tdb = common::pg::test_db();
    let pool = vibex::db::connect(&tdb.url, 1).unwrap();
    vibex::db::run_migrations(&mut pool.get().unwrap()).unwrap();
    let mut conn = PgConnection::establish(&tdb.url).unwrap();
    for id in ["w1", "w2", "w3", "w4", "w5"] {
        queries::upsert_account(&mut conn, &common::pg::paper_account_row(id)).unwrap();
    }
    (tdb, conn)
}

#[test]
fn rows_of_every_shape_read_the_same_json_from_the_wire_as_from_the_models() {
    let (tdb, mut conn) = setup();
    let rows = NUMERICS.len() * TEXTS.len();
    seed(&mut conn, "w1", rows, NUMERICS);
    let f = filter("w1", 1000);
    let models = model_pages(&mut conn, &f);
    let blocking = wire_pages(&mut conn, &f);
    let worker = async_wire_pages(&tdb.url, &f);
    for (k, name) in ["orders", "fills", "positions"].iter().enumerate() {
        let want = models[k].as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
        let page: serde_json::Value = serde_json::from_slice(want).unwrap();
        assert_eq!(page["count"], rows, "{name}: every seeded row is read");
        for (path, got) in [("blocking", &blocking[k]), ("async", &worker[k])] {
            let got = got
                .as_ref()
                .unwrap_or_else(|e| panic!("{name} ({path}): {e}"));
            if got != want {
                let (g, w) = (String::from_utf8_lossy(got), String::from_utf8_lossy(want));
                let at = g
                    .bytes()
                    .zip(w.bytes())
                    .position(|(a, b)| a != b)
                    .unwrap_or(g.len().min(w.len()));
                let from = at.saturating_sub(120);
                panic!(
                    "{name} ({path}) differs at byte {at}:\n wire:  {}\n model: {}",
                    &g[from..(at + 80).min(g.len())],
                    &w[from..(at + 80).min(w.len())]
                );
            }
        }
    }
    // Spot checks of what a user reads.
    let orders: serde_json::Value = serde_json::from_slice(models[0].as_ref().unwrap()).unwrap();
    let all = orders["items"].to_string();
    assert!(all.contains("\"-0.00000001\""), "{all:.300}");
    assert!(all.contains("\"67.31380000\""));
    assert!(all.contains("\"0044-03-15T12:00:00Z\"") || all.contains("-0043-03-15T12:00:00Z"));
}

#[test]
fn what_a_decimal_or_a_timestamp_cannot_hold_is_an_error_on_both_paths() {
    let (tdb, mut conn) = setup();
    let cases = [
        ("w2", "NaN"),
        ("w3", "79228162514264337593543950336"),
        ("w4", "1.00000000000000000000000000001"),
    ];
    for (account, value) in cases {
        seed(&mut conn, account, 1, &[value]);
        let f = filter(account, 10);
        let models = model_pages(&mut conn, &f);
        let blocking = wire_pages(&mut conn, &f);
        let worker = async_wire_pages(&tdb.url, &f);
        for k in 0..3 {
            match &models[k] {
                Ok(want) => {
                    assert_eq!(blocking[k].as_ref().ok(), Some(want), "{value} blocking");
                    assert_eq!(worker[k].as_ref().ok(), Some(want), "{value} async");
                }
                Err(_) => {
                    assert!(blocking[k].is_err(), "{value}: {:?}", blocking[k]);
                    assert!(worker[k].is_err(), "{value}: {:?}", worker[k]);
                }
            }
        }
    }
    // A timestamp chrono cannot hold.
    seed(&mut conn, "w5", 1, &["1"]);
    diesel::sql_query("UPDATE orders SET created_at = 'infinity' WHERE account_id = 'w5'")
        .execute(&mut conn)
        .unwrap();
    let f = filter("w5", 10);
    assert!(queries::list_orders(&mut conn, &f).is_err());
    let err = queries::orders_page(row_json::columns::<OrderRow>(), &f)
        .load::<row_json::Json<OrderRow>>(&mut conn)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("created_at"),
        "the error names the column: {err}"
    );
}
