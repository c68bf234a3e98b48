//! JSON of the busiest lists (`/orders`, `/trades`, `/positions`) written by hand, byte for byte
//! what serde would write, at a fraction of its cost.
//!
//! Entry points: [`EncodeJson`] (implemented for [`OrderRow`], [`FillRow`] and
//! [`PositionRow`]),
//! [`page`] (the `{"items", "count", "limit"}` page of a list).
//!
//! Why: serde writes a timestamp through `collect_str`, one escaped character at a time,
//! and a decimal through a `String` it then escapes; on a 100-row page that was the
//! largest single cost of the request (see benches/read_path.rs). Here ids, decimals and
//! timestamps, which never need escaping, are written straight into the buffer, and text
//! columns take a fast path when they hold nothing to escape.
//!
//! Invariant: the output equals `serde_json::to_vec` of the same value (the tests compare
//! them on rows with every optional field set and unset, odd text and every timestamp
//! precision); a field added to a row must be added here, or the tests fail.

use crate::db::models::{FillRow, OrderRow, PositionRow};
use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use rust_decimal::Decimal;
use std::io::Write;
use uuid::Uuid;

/// A value that writes its own JSON.
pub trait EncodeJson {
    /// Appends the value's JSON to `out`.
    fn encode(&self, out: &mut Vec<u8>);
}

/// The page `{"items":[...],"count":n,"limit":l}` of `items`.
pub fn page<T: EncodeJson>(items: &[T], limit: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + items.len() * 512);
    out.extend_from_slice(b"{\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item.encode(&mut out);
    }
    out.extend_from_slice(b"],\"count\":");
    int(&mut out, items.len() as i64);
    out.extend_from_slice(b",\"limit\":");
    int(&mut out, limit);
    out.push(b'}');
    out
}

/// An object's fields, each written once, in order.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Object<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, first: true }
    }

    fn key(&mut self, name: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn text(&mut self, name: &str, v: &str) {
        text(self.key(name), v);
    }

    /// `name: null`, or the value written by `write`.
    fn opt<T: ?Sized>(&mut self, name: &str, v: Option<&T>, write: fn(&mut Vec<u8>, &T)) {
        let out = self.key(name);
        match v {
            Some(v) => write(out, v),
            None => out.extend_from_slice(b"null"),
        }
    }

    fn uuid(&mut self, name: &str, v: &Uuid) {
        uuid(self.key(name), v);
    }

    fn decimal(&mut self, name: &str, v: &Decimal) {
        decimal(self.key(name), v);
    }

    fn time(&mut self, name: &str, v: &DateTime<Utc>) {
        time(self.key(name), v);
    }

    fn int(&mut self, name: &str, v: i64) {
        int(self.key(name), v);
    }

    fn boolean(&mut self, name: &str, v: bool) {
        let out = self.key(name);
        out.extend_from_slice(if v { b"true" } else { b"false" });
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

pub(crate) fn int(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// A JSON string: copied as is when nothing in it needs escaping, else serde_json's
/// escaping.
pub(crate) fn text(out: &mut Vec<u8>, v: &str) {
    if plain(v.as_bytes()) {
        out.push(b'"');
        out.extend_from_slice(v.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, v).is_err() {
        // Writing into a Vec cannot fail; keep the JSON well-formed regardless.
        out.extend_from_slice(b"null");
    }
}

/// Whether `bytes` hold nothing JSON escapes (a control character, `"` or `\\`), eight
/// bytes at a time: `x - 0x01..01 * n & !x & 0x80..80` is non-zero exactly when a byte
/// of `x` is below `n` (n <= 128), and a byte equal to `c` is a zero byte of `x ^ c..c`.
fn plain(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(chunk);
        let x = u64::from_le_bytes(eight);
        let hits = below(x, 0x20) | below(x ^ (ONES * 0x22), 1) | below(x ^ (ONES * 0x5c), 1);
        if hits & HIGH != 0 {
            return false;
        }
    }
    chunks
        .remainder()
        .iter()
        .all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
}

pub(crate) fn uuid(out: &mut Vec<u8>, v: &Uuid) {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.push(b'"');
    out.extend_from_slice(v.hyphenated().encode_lower(&mut buf).as_bytes());
    out.push(b'"');
}

/// A decimal as serde writes it (`serde-with-str`): its `Display` text — every digit of
/// its scale, trailing zeros included — quoted. The digits come from the mantissa
/// directly; a negative zero (rare, and printed with its sign) takes `Display`.
pub(crate) fn decimal(out: &mut Vec<u8>, v: &Decimal) {
    out.push(b'"');
    if v.is_zero() && v.is_sign_negative() {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{v}");
        out.push(b'"');
        return;
    }
    let m = v.mantissa();
    if m < 0 {
        out.push(b'-');
    }
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(m.unsigned_abs()).as_bytes();
    let scale = v.scale() as usize;
    if scale == 0 {
        out.extend_from_slice(digits);
    } else if digits.len() <= scale {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + scale - digits.len(), b'0');
        out.extend_from_slice(digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    }
    out.push(b'"');
}

/// A timestamp as chrono's serde writes it: RFC 3339 with `Z`, and the fraction of a
/// second in 0, 3, 6 or 9 digits (the fewest that keep it exact).
pub(crate) fn time(out: &mut Vec<u8>, v: &DateTime<Utc>) {
    let year = v.year();
    let nanos = v.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        // Years beyond four digits and leap seconds: chrono's own text.
        out.push(b'"');
        out.extend_from_slice(v.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes());
        out.push(b'"');
        return;
    }
    let date = [year as u32, v.month(), v.day()];
    let clock = [v.hour(), v.minute(), v.second()];
    civil_time(out, date, clock, nanos);
}

/// A timestamp of a year 0 to 9999 from its parts, written as [`time`] writes it.
pub(crate) fn civil_time(out: &mut Vec<u8>, date: [u32; 3], clock: [u32; 3], nanos: u32) {
    let mut buf = [0u8; 32];
    let digits = |buf: &mut [u8], at: usize, width: usize, mut n: u32| {
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    buf[0] = b'"';
    digits(&mut buf, 1, 4, date[0]);
    buf[5] = b'-';
    digits(&mut buf, 6, 2, date[1]);
    buf[8] = b'-';
    digits(&mut buf, 9, 2, date[2]);
    buf[11] = b'T';
    digits(&mut buf, 12, 2, clock[0]);
    buf[14] = b':';
    digits(&mut buf, 15, 2, clock[1]);
    buf[17] = b':';
    digits(&mut buf, 18, 2, clock[2]);
    let mut len = 20;
    if nanos != 0 {
        buf[len] = b'.';
        len += 1;
        if nanos % 1_000_000 == 0 {
            digits(&mut buf, len, 3, nanos / 1_000_000);
            len += 3;
        } else if nanos % 1_000 == 0 {
            digits(&mut buf, len, 6, nanos / 1_000);
            len += 6;
        } else {
            digits(&mut buf, len, 9, nanos);
            len += 9;
        }
    }
    buf[len] = b'Z';
    buf[len + 1] = b'"';
    out.extend_from_slice(&buf[..len + 2]);
}

impl EncodeJson for OrderRow {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut o = Object::new(out);
        o.uuid("id", &self.id);
        o.text("account_id", &self.account_id);
        o.opt("cycle_id", self.cycle_id.as_ref(), uuid);
        o.opt("decision_id", self.decision_id.as_ref(), uuid);
        o.text("client_order_id", &self.client_order_id);
        o.opt("venue_order_id", self.venue_order_id.as_deref(), text);
        o.text("symbol", &self.symbol);
        o.text("side", &self.side);
        o.text("order_type", &self.order_type);
        o.opt("quantity", self.quantity.as_ref(), decimal);
        o.opt("price", self.price.as_ref(), decimal);
        o.opt("stop_price", self.stop_price.as_ref(), decimal);
        o.boolean("reduce_only", self.reduce_only);
        o.boolean("close_position", self.close_position);
        o.text("status", &self.status);
        o.decimal("filled_quantity", &self.filled_quantity);
        o.opt("avg_fill_price", self.avg_fill_price.as_ref(), decimal);
        o.opt("reject_reason", self.reject_reason.as_deref(), text);
        o.time("created_at", &self.created_at);
        o.time("updated_at", &self.updated_at);
        o.end();
    }
}

impl EncodeJson for FillRow {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut o = Object::new(out);
        o.uuid("id", &self.id);
        o.time("ts", &self.ts);
        o.text("account_id", &self.account_id);
        o.opt("cycle_id", self.cycle_id.as_ref(), uuid);
        o.opt("order_id", self.order_id.as_ref(), uuid);
        o.text("client_order_id", &self.client_order_id);
        o.text("symbol", &self.symbol);
        o.text("side", &self.side);
        o.decimal("quantity", &self.quantity);
        o.decimal("price", &self.price);
        o.decimal("fee", &self.fee);
        o.decimal("realized_pnl", &self.realized_pnl);
        o.text("reason", &self.reason);
        o.opt("venue_trade_id", self.venue_trade_id.as_deref(), text);
        o.end();
    }
}

impl EncodeJson for PositionRow {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut o = Object::new(out);
        o.uuid("id", &self.id);
        o.text("account_id", &self.account_id);
        o.text("symbol", &self.symbol);
        o.text("side", &self.side);
        o.decimal("quantity", &self.quantity);
        o.decimal("entry_price", &self.entry_price);
        o.int("leverage", i64::from(self.leverage));
        o.decimal("margin", &self.margin);
        o.opt("tp_price", self.tp_price.as_ref(), decimal);
        o.opt("sl_price", self.sl_price.as_ref(), decimal);
        o.text("exit_plan", &self.exit_plan);
        o.opt("mark_price", self.mark_price.as_ref(), decimal);
        o.decimal("unrealized_pnl", &self.unrealized_pnl);
        o.decimal("realized_pnl", &self.realized_pnl);
        o.text("status", &self.status);
        o.time("opened_at", &self.opened_at);
        o.opt("closed_at", self.closed_at.as_ref(), time);
        o.opt("opened_cycle_id", self.opened_cycle_id.as_ref(), uuid);
        o.time("updated_at", &self.updated_at);
        o.opt(
            "liquidation_price",
            self.liquidation_price.as_ref(),
            decimal,
        );
        o.text("origin", &self.origin);
        o.opt("close_reason", self.close_reason.as_deref(), text);
        o.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    fn times() -> Vec<DateTime<Utc>> {
        let base = Utc.with_ymd_and_hms(2026, 12, 3, 15, 7, 9).unwrap();
        let mut out = vec![
            base,
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(12345, 1, 1, 0, 0, 0).unwrap(),
        ];
        for nanos in [1, 120_000_000, 123_000, 123_456_789, 999_999_999, 5_000] {
            out.push(base + chrono::Duration::nanoseconds(nanos));
        }
        out
    }

    #[test]
    fn the_fast_check_finds_exactly_what_needs_escaping() {
        let naive = |b: &[u8]| b.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\');
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..80 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        // Mostly plain letters, sometimes anything.
                        if seed % 7 == 0 {
                            (seed >> 8) as u8
                        } else {
                            b'a' + (seed >> 8) as u8 % 26
                        }
                    })
                    .collect();
                assert_eq!(plain(&bytes), naive(&bytes), "{bytes:?}");
            }
        }
        for b in 0..=255u8 {
            let mut v = vec![b'x'; 17];
            v[9] = b;
            assert_eq!(plain(&v), naive(&v), "{b}");
        }
    }

    fn decimals() -> Vec<Decimal> {
        vec![
            dec!(0),
            dec!(-0.00000001),
            dec!(67.31380000),
            dec!(100000),
            Decimal::MAX,
            Decimal::MIN,
            dec!(1e-28),
        ]
    }

    fn texts() -> Vec<String> {
        vec![
            String::new(),
            "BTCUSDT".into(),
            "quote \" and \\ backslash".into(),
            "tab\tnew\nline\u{1}".into(),
            "ünïcödé ✓ 𝄞".into(),
            "</script>".into(),
        ]
    }

    fn order(i: usize) -> OrderRow {
        let t = times();
        let d = decimals();
        let s = texts();
        let some = i % 2 == 0;
        OrderRow {
            id: Uuid::now_v7(),
            account_id: s[i % s.len()].clone(),
            cycle_id: some.then(Uuid::new_v4),
            decision_id: (!some).then(Uuid::new_v4),
            client_order_id: s[(i + 1) % s.len()].clone(),
            venue_order_id: some.then(|| s[(i + 2) % s.len()].clone()),
            symbol: "BTC".into(),
            side: "BUY".into(),
            order_type: "TAKE_PROFIT_MARKET".into(),
            quantity: some.then(|| d[i % d.len()]),
            price: (!some).then(|| d[(i + 1) % d.len()]),
            stop_price: some.then(|| d[(i + 2) % d.len()]),
            reduce_only: some,
            close_position: !some,
            status: "FILLED".into(),
            filled_quantity: d[(i + 3) % d.len()],
            avg_fill_price: some.then(|| d[(i + 4) % d.len()]),
            reject_reason: (!some).then(|| s[(i + 3) % s.len()].clone()),
            created_at: t[i % t.len()],
            updated_at: t[(i + 1) % t.len()],
        }
    }

    fn fill(i: usize) -> FillRow {
        let t = times();
        let d = decimals();
        let s = texts();
        let some = i % 2 == 1;
        FillRow {
            id: Uuid::new_v4(),
            ts: t[i % t.len()],
            account_id: s[i % s.len()].clone(),
            cycle_id: some.then(Uuid::new_v4),
            order_id: (!some).then(Uuid::now_v7),
            client_order_id: s[(i + 1) % s.len()].clone(),
            symbol: "ETH".into(),
            side: "SELL".into(),
            quantity: d[i % d.len()],
            price: d[(i + 1) % d.len()],
            fee: d[(i + 2) % d.len()],
            realized_pnl: d[(i + 3) % d.len()],
            reason: s[(i + 4) % s.len()].clone(),
            venue_trade_id: some.then(|| s[(i + 5) % s.len()].clone()),
        }
    }

    fn position(i: usize) -> PositionRow {
        let t = times();
        let d = decimals();
        let s = texts();
        let some = i % 2 == 0;
        PositionRow {
            id: Uuid::new_v4(),
            account_id: s[i % s.len()].clone(),
            symbol: "BTC".into(),
            side: "LONG".into(),
            quantity: d[i % d.len()],
            entry_price: d[(i + 1) % d.len()],
            leverage: [1, 20, -3, i32::MAX, i32::MIN][i % 5],
            margin: d[(i + 2) % d.len()],
            tp_price: some.then(|| d[(i + 3) % d.len()]),
            sl_price: (!some).then(|| d[(i + 4) % d.len()]),
            exit_plan: s[(i + 1) % s.len()].clone(),
            mark_price: some.then(|| d[(i + 5) % d.len()]),
            unrealized_pnl: d[(i + 6) % d.len()],
            realized_pnl: d[i % d.len()],
            status: "open".into(),
            opened_at: t[i % t.len()],
            closed_at: some.then(|| t[(i + 2) % t.len()]),
            opened_cycle_id: (!some).then(Uuid::now_v7),
            updated_at: t[(i + 3) % t.len()],
            liquidation_price: (!some).then(|| d[(i + 1) % d.len()]),
            origin: "vibex".into(),
            close_reason: some.then(|| s[(i + 2) % s.len()].clone()),
        }
    }

    #[test]
    fn decimals_are_their_display_text() {
        let mut cases = decimals();
        cases.extend([
            dec!(0.00),
            dec!(-1.5),
            dec!(0.001),
            dec!(-0.001),
            dec!(123456789.000000001),
            Decimal::from_parts(0, 0, 0, true, 2),
            Decimal::from_parts(0, 0, 0, true, 0),
            Decimal::from_parts(5, 0, 0, false, 28),
            Decimal::from_parts(u32::MAX, u32::MAX, u32::MAX, true, 28),
        ]);
        for v in cases {
            let mut ours = Vec::new();
            decimal(&mut ours, &v);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                format!("\"{v}\""),
                "{v:?}"
            );
        }
    }

    #[test]
    fn positions_are_written_as_serde_writes_them() {
        let rows: Vec<PositionRow> = (0..60).map(position).collect();
        for row in &rows {
            let mut ours = Vec::new();
            row.encode(&mut ours);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(row).unwrap()
            );
        }
    }

    #[derive(serde::Serialize)]
    struct Page<'a, T> {
        items: &'a [T],
        count: usize,
        limit: i64,
    }

    #[test]
    fn orders_are_written_as_serde_writes_them() {
        let rows: Vec<OrderRow> = (0..60).map(order).collect();
        for row in &rows {
            let mut ours = Vec::new();
            row.encode(&mut ours);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(row).unwrap()
            );
        }
        let expected = serde_json::to_vec(&Page {
            items: &rows,
            count: rows.len(),
            limit: 100,
        })
        .unwrap();
        assert_eq!(page(&rows, 100), expected);
    }

    #[test]
    fn fills_are_written_as_serde_writes_them() {
        let rows: Vec<FillRow> = (0..60).map(fill).collect();
        for row in &rows {
            let mut ours = Vec::new();
            row.encode(&mut ours);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(row).unwrap()
            );
        }
        let empty: Vec<FillRow> = Vec::new();
        let expected = serde_json::to_vec(&Page {
            items: &empty,
            count: 0,
            limit: 5,
        })
        .unwrap();
        assert_eq!(page(&empty, 5), expected);
    }
}
