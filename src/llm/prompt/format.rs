//! How numbers, times and free text are written into a prompt, and the template filters
//! that expose those rules to the templates.
//!
//! Entry points: [`sig`], [`sig_decimal`], [`fixed_decimal`], [`series`], [`duration`],
//! [`excerpt`] (plain functions, also used by tests to know what a prompt must contain)
//! and [`register_filters`] (installs them as minijinja filters).
//!
//! Invariants:
//! - nothing here panics, whatever the value: a non-finite float or a missing value is
//!   written `n/a`, a value of the wrong type is a template error;
//! - numbers never use scientific notation and carry no trailing zeros;
//! - an *undefined* value (a typo in a template) is an error, never `n/a`: the strict
//!   undefined behaviour of the environment must not be weakened by a filter.

use chrono::{DateTime, SecondsFormat, Utc};
use minijinja::value::ValueKind;
use minijinja::{Environment, Error, ErrorKind, Value};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use std::str::FromStr;

/// What a missing value (`None`, `null`, a non-finite float) is written as.
pub const NA: &str = "n/a";

/// Most decimal places any number is written with (a funding rate of `0.0000125` still
/// shows; dust below that does not).
pub const MAX_DECIMALS: u32 = 10;

/// Default significant digits of the `num` and `series` filters.
pub const DEFAULT_SIG: u32 = 6;

/// Default characters kept by the `excerpt` filter.
pub const DEFAULT_EXCERPT: usize = 160;

/// Writes `x` with `sig` significant digits, never fewer than the integer digits
/// (`60123.456` with 6 is `60123.5`, `1234567.8` with 6 is `1234568`), without trailing
/// zeros or exponent; `n/a` when not finite.
pub fn sig(x: f64, sig: u32) -> String {
    if !x.is_finite() {
        return NA.to_string();
    }
    if x == 0.0 {
        return "0".to_string();
    }
    let dp = decimals_for(x.abs().log10(), sig);
    trim_zeros(format!("{x:.*}", dp as usize))
}

/// [`sig`] for a decimal: rounded half away from zero, exactly (no float detour for the
/// digits kept).
pub fn sig_decimal(d: Decimal, sig: u32) -> String {
    if d.is_zero() {
        return "0".to_string();
    }
    let magnitude = d.abs().to_f64().map_or(0.0, f64::log10);
    let dp = decimals_for(magnitude, sig);
    let rounded = d.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
    trim_zeros(rounded.normalize().to_string())
}

/// `d` with exactly `dp` decimal places (money: `fixed_decimal(d, 2)`).
pub fn fixed_decimal(d: Decimal, dp: u32) -> String {
    let dp = dp.min(MAX_DECIMALS);
    let mut rounded = d.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(dp);
    let text = rounded.to_string();
    if text.starts_with('-') && text.trim_start_matches(['-', '0', '.']).is_empty() {
        text.trim_start_matches('-').to_string()
    } else {
        text
    }
}

/// `x` with exactly `dp` decimal places; `n/a` when not finite.
pub fn fixed(x: f64, dp: u32) -> String {
    if !x.is_finite() {
        return NA.to_string();
    }
    let text = format!("{x:.*}", dp.min(MAX_DECIMALS) as usize);
    if text.starts_with('-') && text.trim_start_matches(['-', '0', '.']).is_empty() {
        text.trim_start_matches('-').to_string()
    } else {
        text
    }
}

/// A series, oldest first, as `a, b, c` with [`sig`] digits each and `n/a` for gaps;
/// an empty series is `n/a`.
pub fn series(values: &[Option<f64>], digits: u32) -> String {
    if values.is_empty() {
        return NA.to_string();
    }
    values
        .iter()
        .map(|v| v.map_or_else(|| NA.to_string(), |x| sig(x, digits)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A span of whole seconds as its two largest units: `45s`, `15m`, `3h05m`, `2d04h`.
/// Negative spans are written as zero.
pub fn duration(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3_600, (s % 3_600) / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) if s % 60 == 0 => format!("{m}m"),
        (0, 0, m) => format!("{m}m{:02}s", s % 60),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m:02}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h:02}h"),
    }
}

/// `text` on one line (runs of whitespace, newlines included, become one space), cut
/// to at most `max` characters with `…` when longer.
pub fn excerpt(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let kept: String = flat.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", kept.trim_end())
}

/// A time as RFC 3339 in UTC to the second (`2024-05-01T12:00:00Z`).
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Installs the prompt filters on `env`:
///
/// | filter | writes |
/// | --- | --- |
/// | `num(sig=6)` | a number (float, integer or decimal string) with `sig` significant digits |
/// | `fixed(dp=2)` | a number with exactly `dp` decimals (money) |
/// | `signed(dp=2)` | as `fixed`, with a `+` on positive values (PnL) |
/// | `series(sig=6)` | a list of numbers as `a, b, c` |
/// | `time` | an RFC 3339 timestamp, to the second, UTC |
/// | `elapsed(now)` | how long before `now` a timestamp is (`3h05m`) |
/// | `remaining(now)` | how long after `now` a timestamp is |
/// | `duration` | a number of seconds as `15m`, `3h05m` |
/// | `excerpt(n=160)` | text on one line, cut to `n` characters |
///
/// Every filter writes `none` as `n/a` and fails on an undefined value.
pub fn register_filters(env: &mut Environment<'_>) {
    env.add_filter("num", |v: &Value, digits: Option<u32>| {
        number(v, "num", |n| match n {
            Number::Float(x) => sig(x, digits.unwrap_or(DEFAULT_SIG)),
            Number::Decimal(d) => sig_decimal(d, digits.unwrap_or(DEFAULT_SIG)),
        })
    });
    env.add_filter("fixed", |v: &Value, dp: Option<u32>| {
        number(v, "fixed", |n| match n {
            Number::Float(x) => fixed(x, dp.unwrap_or(2)),
            Number::Decimal(d) => fixed_decimal(d, dp.unwrap_or(2)),
        })
    });
    env.add_filter("signed", |v: &Value, dp: Option<u32>| {
        number(v, "signed", |n| {
            let text = match n {
                Number::Float(x) => fixed(x, dp.unwrap_or(2)),
                Number::Decimal(d) => fixed_decimal(d, dp.unwrap_or(2)),
            };
            let nonzero = text.chars().any(|c| c.is_ascii_digit() && c != '0');
            if nonzero && !text.starts_with('-') && text != NA {
                format!("+{text}")
            } else {
                text
            }
        })
    });
    env.add_filter("series", |v: &Value, digits: Option<u32>| {
        defined(v, "series")?;
        if v.is_none() {
            return Ok(NA.to_string());
        }
        let digits = digits.unwrap_or(DEFAULT_SIG);
        let mut out = Vec::new();
        for item in v.try_iter()? {
            out.push(number(&item, "series", |n| match n {
                Number::Float(x) => sig(x, digits),
                Number::Decimal(d) => sig_decimal(d, digits),
            })?);
        }
        Ok::<_, Error>(if out.is_empty() {
            NA.to_string()
        } else {
            out.join(", ")
        })
    });
    env.add_filter("time", |v: &Value| {
        timestamp(v, "time").map(|t| t.map_or_else(|| NA.to_string(), time))
    });
    env.add_filter("elapsed", |v: &Value, now: &Value| {
        let (t, now) = (timestamp(v, "elapsed")?, timestamp(now, "elapsed")?);
        Ok::<_, Error>(match (t, now) {
            (Some(t), Some(now)) => duration((now - t).num_seconds()),
            _ => NA.to_string(),
        })
    });
    env.add_filter("remaining", |v: &Value, now: &Value| {
        let (t, now) = (timestamp(v, "remaining")?, timestamp(now, "remaining")?);
        Ok::<_, Error>(match (t, now) {
            (Some(t), Some(now)) => duration((t - now).num_seconds()),
            _ => NA.to_string(),
        })
    });
    env.add_filter("duration", |v: &Value| {
        number(v, "duration", |n| match n {
            Number::Float(x) if x.is_finite() => duration(x as i64),
            Number::Float(_) => NA.to_string(),
            Number::Decimal(d) => d.trunc().to_i64().map_or_else(|| NA.to_string(), duration),
        })
    });
    env.add_filter("excerpt", |v: &Value, max: Option<usize>| {
        defined(v, "excerpt")?;
        if v.is_none() {
            return Ok(NA.to_string());
        }
        let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
        Ok::<_, Error>(excerpt(&text, max.unwrap_or(DEFAULT_EXCERPT)))
    });
}

/// Decimal places that leave `sig` significant digits for a value of magnitude
/// `log10(|x|)`, capped at [`MAX_DECIMALS`].
fn decimals_for(log10_abs: f64, sig: u32) -> u32 {
    if !log10_abs.is_finite() {
        return 0;
    }
    let magnitude = log10_abs.floor() as i64;
    (i64::from(sig.max(1)) - 1 - magnitude).clamp(0, i64::from(MAX_DECIMALS)) as u32
}

fn trim_zeros(text: String) -> String {
    let trimmed = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text.as_str()
    };
    match trimmed {
        "-0" | "" => "0".to_string(),
        t => t.to_string(),
    }
}

/// A number as a template hands it over: floats and integers arrive as numbers,
/// decimals (money, prices) as their exact string.
enum Number {
    Float(f64),
    Decimal(Decimal),
}

fn defined(v: &Value, filter: &str) -> Result<(), Error> {
    if v.is_undefined() {
        Err(Error::new(
            ErrorKind::UndefinedError,
            format!("`{filter}` got an undefined value (a misspelt variable?)"),
        ))
    } else {
        Ok(())
    }
}

/// Applies `write` to a numeric value; `none` is `n/a`, anything else an error.
fn number(v: &Value, filter: &str, write: impl FnOnce(Number) -> String) -> Result<String, Error> {
    defined(v, filter)?;
    if v.is_none() {
        return Ok(NA.to_string());
    }
    let n = match v.kind() {
        ValueKind::Number => {
            if let Some(i) = v.as_i64() {
                Number::Decimal(Decimal::from(i))
            } else {
                Number::Float(f64::try_from(v.clone())?)
            }
        }
        ValueKind::String => {
            let s = v.as_str().unwrap_or_default();
            let d = Decimal::from_str(s)
                .or_else(|_| Decimal::from_scientific(s))
                .map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        format!("`{filter}` expects a number, got the string {s:?}"),
                    )
                })?;
            Number::Decimal(d)
        }
        kind => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("`{filter}` expects a number, got a {kind}"),
            ))
        }
    };
    Ok(write(n))
}

/// A timestamp as a template hands it over (an RFC 3339 string); `none` is `None`.
fn timestamp(v: &Value, filter: &str) -> Result<Option<DateTime<Utc>>, Error> {
    defined(v, filter)?;
    if v.is_none() {
        return Ok(None);
    }
    let s = v.as_str().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "`{filter}` expects an RFC 3339 timestamp, got a {}",
                v.kind()
            ),
        )
    })?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("`{filter}` expects an RFC 3339 timestamp, got {s:?}: {e}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn significant_digits_keep_integer_digits_and_drop_trailing_zeros() {
        assert_eq!(sig(60123.456, 6), "60123.5");
        assert_eq!(sig(1_234_567.8, 6), "1234568");
        assert_eq!(sig(3012.3456, 6), "3012.35");
        assert_eq!(sig(-0.001234567, 4), "-0.001235");
        assert_eq!(sig(55.0, 3), "55");
        assert_eq!(sig(0.0, 6), "0");
        assert_eq!(sig(-0.0000000000001, 3), "0");
        assert_eq!(sig(f64::NAN, 6), "n/a");
        assert_eq!(sig(f64::INFINITY, 6), "n/a");
        assert_eq!(sig_decimal(dec!(60123.45), 8), "60123.45");
        assert_eq!(sig_decimal(dec!(0.00010000), 8), "0.0001");
        assert_eq!(sig_decimal(dec!(12345.67891234), 8), "12345.679");
        assert_eq!(sig_decimal(dec!(-2.5), 1), "-3");
        assert_eq!(sig_decimal(Decimal::MAX, 6), Decimal::MAX.to_string());
    }

    #[test]
    fn fixed_places_and_negative_zero() {
        assert_eq!(fixed_decimal(dec!(10000), 2), "10000.00");
        assert_eq!(fixed_decimal(dec!(-0.001), 2), "0.00");
        assert_eq!(fixed_decimal(dec!(56.005), 2), "56.01");
        assert_eq!(fixed(-0.001, 2), "0.00");
        assert_eq!(fixed(1.5, 0), "2");
    }

    #[test]
    fn durations_use_their_two_largest_units() {
        assert_eq!(duration(-5), "0s");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(900), "15m");
        assert_eq!(duration(905), "15m05s");
        assert_eq!(duration(3 * 3600 + 5 * 60 + 9), "3h05m");
        assert_eq!(duration(7200), "2h");
        assert_eq!(duration(2 * 86_400 + 4 * 3600), "2d04h");
        assert_eq!(duration(i64::MAX), duration(i64::MAX));
    }

    #[test]
    fn excerpts_are_one_line_and_bounded() {
        assert_eq!(excerpt("a\n  b\tc", 10), "a b c");
        assert_eq!(excerpt("abcdefghij", 5), "abcd…");
        assert_eq!(excerpt("é".repeat(10).as_str(), 3), "éé…");
        assert_eq!(excerpt("", 0), "");
    }

    #[test]
    fn filters_write_none_as_na_and_refuse_undefined() {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        register_filters(&mut env);
        let render = |src: &str, ctx: Value| env.render_str(src, ctx);
        let ctx = minijinja::context! {
            x => Value::from(()),
            d => "60123.450",
            f => 1.23456789,
            i => 900,
            l => vec![Some(1.0), None, Some(2.5)],
            t => "2024-05-01T12:00:00.123456Z",
            now => "2024-05-01T15:05:00Z",
            pnl => "56.005",
            loss => "-3.1",
        };
        let out = render(
            "{{ x|num }} {{ d|num(8) }} {{ f|num(3) }} {{ i|duration }} {{ l|series }} \
             {{ t|time }} {{ t|elapsed(now) }} {{ t|remaining(now) }} {{ pnl|signed }} \
             {{ loss|signed }} {{ x|fixed }} {{ x|excerpt }} {{ x|time }}",
            ctx.clone(),
        )
        .unwrap();
        assert_eq!(
            out,
            "n/a 60123.45 1.23 15m 1, n/a, 2.5 2024-05-01T12:00:00Z 3h04m 0s +56.01 -3.10 \
             n/a n/a n/a"
        );
        for typo in [
            "{{ nope|num }}",
            "{{ nope|series }}",
            "{{ t|elapsed(nope) }}",
        ] {
            let err = render(typo, ctx.clone()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::UndefinedError, "{typo}: {err}");
        }
        assert!(render("{{ 'abc'|num }}", ctx.clone()).is_err());
        assert!(render("{{ 'yesterday'|time }}", ctx).is_err());
    }
}
