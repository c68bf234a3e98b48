//! Rows of the busiest lists (`/orders`, `/trades`, `/positions`) written as JSON straight
//! from PostgreSQL's binary format, without building the model structs first.
//!
//! Entry points: [`Json`] (a row already written as JSON; load a page query into it),
//! [`WireJson`] (the fields of a row type, in column order), [`page`].
//!
//! Why: with the model structs, a 100-row page cost one `String` per text column, a
//! `Decimal` built from PostgreSQL's base-10000 digits through divisions, a chrono
//! date built by calendar arithmetic, and then the same values taken apart again to
//! write them (benches/read_path.rs: two thirds of the request's user CPU). Here each
//! column's bytes are read once and written once: text is checked to be UTF-8 and
//! copied, a numeric's digits are printed as PostgreSQL's own `numeric_out` prints
//! them, a timestamp's microseconds become RFC 3339.
//!
//! Invariant: a row's JSON equals what [`crate::api::encode`] (and so serde) writes for
//! the model struct read from the same row; tests/row_json.rs compares both on rows of
//! every shape stored in PostgreSQL. A numeric `Decimal` cannot hold (more than 28
//! digits of scale or of mantissa, NaN, infinity) and a timestamp chrono cannot hold are
//! errors, exactly as they are when the model struct is read. The field lists below must
//! follow the schema's columns and types: the columns' types are not checked row by row
//! (that lookup cost more than the rest of a timestamp's decoding); the equality tests
//! fail when a list and the schema part, and a value of the wrong size is an error that
//! names the column.

use crate::api::encode;
use crate::db::models::{FillRow, OrderRow, PositionRow};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::{AppearsOnTable, Expression, SelectableExpression, ValidGrouping};
use diesel::pg::{Pg, PgTypeMetadata, PgValue};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::row::{Field as _, Row};
use diesel::sql_types::{is_nullable, HasSqlType, SingleValue, SqlType};
use diesel::{QueryResult, Selectable};
use std::marker::PhantomData;

/// How a column is stored on the wire (PostgreSQL's binary format).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// `uuid`: 16 bytes.
    Uuid,
    /// `text` or `varchar`: UTF-8 bytes.
    Text,
    /// `numeric`: base-10000 digits with weight, sign and display scale.
    Numeric,
    /// `timestamptz`: microseconds since 2000-01-01 00:00 UTC.
    Time,
    /// `bool`: one byte.
    Bool,
    /// `int4`: four bytes, big-endian.
    Int4,
}

/// One field of a row: its JSON key, its wire kind, whether it may be NULL.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// The key, as in the struct.
    pub name: &'static str,
    /// `"name":`, written before the value.
    pub key: &'static str,
    pub wire: Wire,
    pub nullable: bool,
}

/// A [`Field`] that is never NULL (`f!`) or may be (`f!(opt ...)`).
macro_rules! f {
    ($name:literal, $wire:ident) => {
        Field {
            name: $name,
            key: concat!("\"", $name, "\":"),
            wire: Wire::$wire,
            nullable: false,
        }
    };
    (opt $name:literal, $wire:ident) => {
        Field {
            name: $name,
            key: concat!("\"", $name, "\":"),
            wire: Wire::$wire,
            nullable: true,
        }
    };
}

/// A row type whose columns, selected in the order of its fields
/// (`Selectable::construct_selection`), are written by [`Json`].
pub trait WireJson {
    /// The fields, in column order, as the struct declares them (serde's order).
    const FIELDS: &'static [Field];
}

impl WireJson for OrderRow {
    const FIELDS: &'static [Field] = &[
        f!("id", Uuid),
        f!("account_id", Text),
        f!(opt "cycle_id", Uuid),
        f!(opt "decision_id", Uuid),
        f!("client_order_id", Text),
        f!(opt "venue_order_id", Text),
        f!("symbol", Text),
        f!("side", Text),
        f!("order_type", Text),
        f!(opt "quantity", Numeric),
        f!(opt "price", Numeric),
        f!(opt "stop_price", Numeric),
        f!("reduce_only", Bool),
        f!("close_position", Bool),
        f!("status", Text),
        f!("filled_quantity", Numeric),
        f!(opt "avg_fill_price", Numeric),
        f!(opt "reject_reason", Text),
        f!("created_at", Time),
        f!("updated_at", Time),
    ];
}

impl WireJson for FillRow {
    const FIELDS: &'static [Field] = &[
        f!("id", Uuid),
        f!("ts", Time),
        f!("account_id", Text),
        f!(opt "cycle_id", Uuid),
        f!(opt "order_id", Uuid),
        f!("client_order_id", Text),
        f!("symbol", Text),
        f!("side", Text),
        f!("quantity", Numeric),
        f!("price", Numeric),
        f!("fee", Numeric),
        f!("realized_pnl", Numeric),
        f!("reason", Text),
        f!(opt "venue_trade_id", Text),
    ];
}

impl WireJson for PositionRow {
    const FIELDS: &'static [Field] = &[
        f!("id", Uuid),
        f!("account_id", Text),
        f!("symbol", Text),
        f!("side", Text),
        f!("quantity", Numeric),
        f!("entry_price", Numeric),
        f!("leverage", Int4),
        f!("margin", Numeric),
        f!(opt "tp_price", Numeric),
        f!(opt "sl_price", Numeric),
        f!("exit_plan", Text),
        f!(opt "mark_price", Numeric),
        f!("unrealized_pnl", Numeric),
        f!("realized_pnl", Numeric),
        f!("status", Text),
        f!("opened_at", Time),
        f!(opt "closed_at", Time),
        f!(opt "opened_cycle_id", Uuid),
        f!("updated_at", Time),
        f!(opt "liquidation_price", Numeric),
        f!("origin", Text),
        f!(opt "close_reason", Text),
    ];
}

/// One row of `T`, already written as its JSON object.
pub struct Json<T> {
    pub bytes: Vec<u8>,
    row: PhantomData<fn() -> T>,
}

/// The columns of the row type `T` in the order of its fields, selected under a SQL type
/// of their own ([`WireRow`]), so that a query of them loads as [`Json`] of `T`: select
/// [`columns`] in a page query.
#[derive(Debug, Clone, Copy)]
pub struct Columns<T: Selectable<Pg>>(T::SelectExpression);

/// The columns of `T`, for a query's `select`.
pub fn columns<T: Selectable<Pg>>() -> Columns<T> {
    Columns(T::construct_selection())
}

/// The SQL type of [`Columns`] of `T`: a whole row, never NULL.
#[derive(Debug, Clone, Copy)]
pub struct WireRow<T>(PhantomData<fn() -> T>);

impl<T: 'static> SqlType for WireRow<T> {
    type IsNull = is_nullable::NotNull;
}

impl<T: 'static> SingleValue for WireRow<T> {}

impl<T: 'static> HasSqlType<WireRow<T>> for Pg {
    /// PostgreSQL's `record` (never sent: the rows' columns carry their own types).
    fn metadata(_: &mut Self::MetadataLookup) -> PgTypeMetadata {
        PgTypeMetadata::new(2249, 2287)
    }
}

impl<T: Selectable<Pg> + 'static> Expression for Columns<T> {
    type SqlType = WireRow<T>;
}

impl<T: Selectable<Pg>> QueryFragment<Pg> for Columns<T>
where
    T::SelectExpression: QueryFragment<Pg>,
{
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }
}

impl<T: Selectable<Pg>> QueryId for Columns<T> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<T: Selectable<Pg> + 'static, QS> SelectableExpression<QS> for Columns<T> where
    T::SelectExpression: SelectableExpression<QS>
{
}

impl<T: Selectable<Pg> + 'static, QS> AppearsOnTable<QS> for Columns<T> where
    T::SelectExpression: AppearsOnTable<QS>
{
}

impl<T: Selectable<Pg>> ValidGrouping<()> for Columns<T>
where
    T::SelectExpression: ValidGrouping<()>,
{
    type IsAggregate = <T::SelectExpression as ValidGrouping<()>>::IsAggregate;
}

// One impl per row type: a generic one would overlap diesel's blanket impl of
// `FromSqlRow` for `Queryable` types.
macro_rules! from_columns {
    ($($row:ty),*) => {$(
        impl FromSqlRow<WireRow<$row>, Pg> for Json<$row> {
            fn build_from_row<'a>(row: &impl Row<'a, Pg>) -> deserialize::Result<Self> {
                build::<$row>(row)
            }
        }
    )*};
}

from_columns!(OrderRow, FillRow, PositionRow);

fn build<'a, T: WireJson>(row: &impl Row<'a, Pg>) -> deserialize::Result<Json<T>> {
    let fields = T::FIELDS;
    if row.field_count() != fields.len() {
        return Err(format!(
            "a row of {} columns where {} were expected",
            row.field_count(),
            fields.len()
        )
        .into());
    }
    // Room for a typical row (a uuid is 38 bytes, a timestamp up to 29) in one allocation.
    let mut out = Vec::with_capacity(64 + fields.len() * 44);
    out.push(b'{');
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(field.key.as_bytes());
        let column = row
            .get(i)
            .ok_or_else(|| format!("column {} is missing", field.name))?;
        match column.value() {
            None if field.nullable => out.extend_from_slice(b"null"),
            None => return Err(format!("column {} is NULL", field.name).into()),
            Some(v) => write_value(&mut out, field, v)?,
        }
    }
    out.push(b'}');
    Ok(Json {
        bytes: out,
        row: PhantomData,
    })
}

fn write_value(out: &mut Vec<u8>, field: &Field, v: PgValue<'_>) -> deserialize::Result<()> {
    let bytes = v.as_bytes();
    match field.wire {
        Wire::Uuid => {
            let id =
                uuid::Uuid::from_slice(bytes).map_err(|e| format!("column {}: {e}", field.name))?;
            encode::uuid(out, &id);
        }
        Wire::Text => {
            let s =
                std::str::from_utf8(bytes).map_err(|e| format!("column {}: {e}", field.name))?;
            encode::text(out, s);
        }
        Wire::Numeric => {
            if !numeric(out, bytes) {
                // What a Decimal cannot hold takes the Decimal's own path, and its error.
                let d =
                    <rust_decimal::Decimal as FromSql<diesel::sql_types::Numeric, Pg>>::from_sql(
                        v,
                    )?;
                encode::decimal(out, &d);
            }
        }
        Wire::Time => {
            let micros = i64::from_be_bytes(
                bytes
                    .try_into()
                    .map_err(|_| format!("column {}: not 8 bytes", field.name))?,
            );
            if !civil_time(out, micros) {
                let t = micros
                    .checked_add(PG_EPOCH_MICROS)
                    .and_then(chrono::DateTime::from_timestamp_micros)
                    .ok_or_else(|| format!("column {}: timestamp out of range", field.name))?;
                encode::time(out, &t);
            }
        }
        Wire::Bool => {
            let b = *bytes
                .first()
                .ok_or_else(|| format!("column {}: empty bool", field.name))?;
            out.extend_from_slice(if b != 0 { b"true" } else { b"false" });
        }
        Wire::Int4 => {
            let n = i32::from_be_bytes(
                bytes
                    .try_into()
                    .map_err(|_| format!("column {}: not 4 bytes", field.name))?,
            );
            encode::int(out, i64::from(n));
        }
    }
    Ok(())
}

/// Writes a timestamp of years 0 to 9999 given in microseconds since PostgreSQL's epoch,
/// as [`encode::time`] writes it; returns `false`, having written nothing, for any
/// other year (chrono's text takes those).
fn civil_time(out: &mut Vec<u8>, micros: i64) -> bool {
    // 0000-01-01 and 10000-01-01 in microseconds since 2000-01-01.
    const FIRST: i64 = -730_485 * 86_400_000_000;
    const END: i64 = 2_921_940 * 86_400_000_000;
    if !(FIRST..END).contains(&micros) {
        return false;
    }
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    // Days since 2000-01-01 to a civil date (Howard Hinnant's days_from_civil, inverted),
    // counted from 0000-03-01 so that leap days fall at the end of a year.
    let z = days + 730_425;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    encode::civil_time(
        out,
        [year as u32, month, day],
        [sod / 3600, sod / 60 % 60, sod % 60],
        frac * 1000,
    );
    true
}

/// Microseconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01 (UTC).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The largest display scale, and number of digits, a `Decimal` holds: 28.
const DECIMAL_DIGITS: usize = 28;

/// Writes a numeric's text, quoted, as `numeric_out` prints it (and as a `Decimal` of the
/// same value and scale displays). Returns `false`, having written nothing, for what a
/// `Decimal` could not hold: NaN and infinities, more than 28 digits of scale, or more
/// than 28 digits in all (a 96-bit mantissa holds every 28-digit number).
fn numeric(out: &mut Vec<u8>, bytes: &[u8]) -> bool {
    let word = |i: usize| -> u16 {
        match bytes.get(i * 2..i * 2 + 2) {
            Some(&[a, b]) => u16::from_be_bytes([a, b]),
            _ => 0,
        }
    };
    if bytes.len() < 8 {
        return false;
    }
    let ndigits = usize::from(word(0));
    let weight = i32::from(word(1) as i16);
    let sign = word(2);
    let dscale = usize::from(word(3));
    if bytes.len() != 8 + 2 * ndigits || (sign != 0x0000 && sign != 0x4000) {
        return false;
    }
    // Digit group `j` (0 first) has the exponent `weight - j`, base 10,000.
    let digit = |j: i32| -> u16 {
        if j < 0 || j as usize >= ndigits {
            0
        } else {
            word(4 + j as usize)
        }
    };
    if (0..ndigits).any(|j| word(4 + j) > 9999) {
        return false;
    }
    let lead = digit(0);
    if lead == 0 && ndigits > 0 {
        // Not normalised (PostgreSQL never stores a leading zero group).
        return false;
    }
    let int_digits = if weight < 0 || lead == 0 {
        0
    } else {
        let lead_digits = match lead {
            0..=9 => 1,
            10..=99 => 2,
            100..=999 => 3,
            _ => 4,
        };
        lead_digits + 4 * weight as usize
    };
    if dscale > DECIMAL_DIGITS || int_digits + dscale > DECIMAL_DIGITS {
        return false;
    }
    out.push(b'"');
    if sign == 0x4000 && (0..ndigits).any(|j| word(4 + j) != 0) {
        out.push(b'-');
    }
    if int_digits == 0 {
        out.push(b'0');
    } else {
        encode::int(out, i64::from(lead));
        for j in 1..=weight {
            out.extend_from_slice(&four(digit(j)));
        }
    }
    if dscale > 0 {
        out.push(b'.');
        let mut left = dscale;
        let mut j = weight + 1;
        while left > 0 {
            let take = left.min(4);
            out.extend_from_slice(&four(digit(j))[..take]);
            left -= take;
            j += 1;
        }
    }
    out.push(b'"');
    true
}

/// The four decimal digits of a base-10,000 digit group.
fn four(g: u16) -> [u8; 4] {
    const PAIRS: &[u8; 200] = b"00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";
    let (hi, lo) = (usize::from(g / 100 % 100) * 2, usize::from(g % 100) * 2);
    [PAIRS[hi], PAIRS[hi + 1], PAIRS[lo], PAIRS[lo + 1]]
}

/// The page `{"items":[...],"count":n,"limit":l}` of rows already written as JSON.
pub fn page<T>(rows: &[Json<T>], limit: i64) -> Vec<u8> {
    let body: usize = rows.iter().map(|r| r.bytes.len() + 1).sum();
    let mut out = Vec::with_capacity(64 + body);
    out.extend_from_slice(b"{\"items\":[");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&row.bytes);
    }
    out.extend_from_slice(b"],\"count\":");
    encode::int(&mut out, rows.len() as i64);
    out.extend_from_slice(b",\"limit\":");
    encode::int(&mut out, limit);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binary form of a numeric: digits base 10000, weight, sign, display scale.
    fn wire(digits: &[u16], weight: i16, negative: bool, dscale: u16) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(digits.len() as u16).to_be_bytes());
        b.extend_from_slice(&weight.to_be_bytes());
        b.extend_from_slice(&(if negative { 0x4000u16 } else { 0 }).to_be_bytes());
        b.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b
    }

    fn text(bytes: &[u8]) -> Option<String> {
        let mut out = Vec::new();
        numeric(&mut out, bytes).then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn numerics_print_as_numeric_out_does() {
        let cases: &[(&[u16], i16, bool, u16, &str)] = &[
            (&[], 0, false, 0, "\"0\""),
            (&[], 0, false, 4, "\"0.0000\""),
            (&[67, 3138], 0, false, 8, "\"67.31380000\""),
            (&[10], 1, false, 0, "\"100000\""),
            (&[1], -2, true, 8, "\"-0.00000001\""),
            (&[5000], -1, false, 1, "\"0.5\""),
            (&[12, 3456, 7890], 1, true, 4, "\"-123456.7890\""),
            (&[1], 0, false, 2, "\"1.00\""),
        ];
        for (digits, weight, negative, dscale, want) in cases {
            assert_eq!(
                text(&wire(digits, *weight, *negative, *dscale)).as_deref(),
                Some(*want),
                "{digits:?} weight {weight}"
            );
        }
    }

    #[test]
    fn timestamps_print_as_chrono_serde_does() {
        let mut micros = vec![
            0,
            -1,
            1,
            -PG_EPOCH_MICROS,
            -730_485 * 86_400_000_000,
            2_921_940 * 86_400_000_000 - 1,
            -63_082_281_600_000_000,
        ];
        // Every day of 2023..2025 and the years around leap-year rules, at odd times.
        let day = 86_400_000_000i64;
        for d in (-1_000..2_000).chain((-730_485..-729_000).step_by(7)) {
            micros.push(d * day + 3_723_000_123 * (d % 5) + 45_000 * (d % 3));
        }
        for m in micros {
            let mut fast = Vec::new();
            assert!(civil_time(&mut fast, m), "{m}");
            let t = chrono::DateTime::from_timestamp_micros(m + PG_EPOCH_MICROS).unwrap();
            let mut want = Vec::new();
            encode::time(&mut want, &t);
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                String::from_utf8(want).unwrap(),
                "{m}"
            );
        }
        let mut none = Vec::new();
        assert!(!civil_time(&mut none, -730_485 * 86_400_000_000 - 1));
        assert!(!civil_time(&mut none, 2_921_940 * 86_400_000_000));
        assert!(none.is_empty());
    }

    #[test]
    fn what_a_decimal_cannot_hold_is_left_to_the_decimal_path() {
        // NaN, a scale of 29, 29 integer digits, a truncated buffer, a digit above 9999.
        let nan = [0u8, 0, 0, 0, 0xC0, 0, 0, 0];
        assert_eq!(text(&nan), None);
        assert_eq!(text(&wire(&[1], -8, false, 29)), None);
        assert_eq!(text(&wire(&[1, 0, 0, 0, 0, 0, 0, 0], 7, false, 0)), None);
        assert_eq!(text(&wire(&[1, 2], 1, false, 0)[..10]), None);
        assert_eq!(text(&wire(&[10000], 0, false, 0)), None);
    }
}
