//! The drains behind the root logger: a cheap front drain on the caller's thread and
//! the router that runs on the logging thread.
//!
//! [`Front`] (caller's thread) drops records below the effective level, stamps the
//! record with the time it was logged and hands it to `slog-async`. [`Router`] (logging
//! thread) turns a record into one masked JSON line, writes it to the domain file and, at
//! Error/Critical, to `errors.log`, and writes the masked human-readable line to stderr.

use super::mask::{SecretMask, MASK};
use super::rotate::RotatingFile;
use super::{LogDomain, DOMAIN_KEY};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use slog::{Drain, Key, Level, Never, OwnedKVList, Record, RecordStatic, Serializer, KV};
use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;

/// Internal key carrying the logging time (Unix milliseconds) from [`Front`] to
/// [`Router`]; never written as a field.
const TS_KEY: &str = "__vibex_ts_ms";

/// Field names the JSON line sets itself; a record key-value with one of these names is
/// written as `kv_<name>` instead of being lost or duplicated.
const RESERVED: [&str; 3] = ["ts", "level", "msg"];

/// Caller-side drain: level filter, timestamp, hand-off to the async channel.
pub(super) struct Front<D> {
    /// Least severe level that reaches the router (the configured level, but never
    /// stricter than Error so that `errors.log` always gets errors).
    pub(super) min_level: Level,
    pub(super) inner: D,
}

impl<D: Drain> Drain for Front<D> {
    type Ok = ();
    type Err = Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), Never> {
        if !record.level().is_at_least(self.min_level) {
            return Ok(());
        }
        let stamped = (
            slog::SingleKV(TS_KEY, Utc::now().timestamp_millis()),
            record.kv(),
        );
        let rs = RecordStatic {
            location: record.location(),
            tag: record.tag(),
            level: record.level(),
        };
        // After shutdown (guard dropped) the channel is closed: the record is dropped.
        let _ = self.inner.log(
            &Record::new(&rs, record.msg(), slog::BorrowedKV(&stamped)),
            values,
        );
        Ok(())
    }

    fn is_enabled(&self, level: Level) -> bool {
        level.is_at_least(self.min_level)
    }
}

/// One open log file and whether its last write failed (to report failures once).
struct Sink {
    file: RotatingFile,
    failing: bool,
}

impl Sink {
    fn write(&mut self, line: &[u8]) {
        match self.file.append(line) {
            Ok(()) => self.failing = false,
            Err(e) => {
                if !self.failing {
                    let _ = writeln!(
                        io::stderr(),
                        "vibex telemetry: cannot write {}: {e}",
                        self.file.path().display()
                    );
                }
                self.failing = true;
            }
        }
    }
}

/// The open files, one per domain plus `errors.log`.
pub(super) struct Files {
    pub(super) domains: [RotatingFile; 4],
    pub(super) errors: RotatingFile,
}

/// The stderr formatter: slog-term's full format into a masking line buffer.
type StderrFormat = slog_term::FullFormat<slog_term::PlainDecorator<MaskedLines>>;

/// Logging-thread drain: formats, masks and routes every record.
pub(super) struct Router {
    level: Level,
    mask: SecretMask,
    domains: Mutex<[Sink; 4]>,
    errors: Mutex<Sink>,
    stderr: Option<StderrFormat>,
    /// An empty logger context (stderr gets the loggers' key-values with the record's).
    no_values: OwnedKVList,
}

impl Router {
    /// `stderr`: where the human-readable lines go, if anywhere.
    pub(super) fn new(
        level: Level,
        mask: SecretMask,
        files: Files,
        stderr: Option<Box<dyn Write + Send>>,
    ) -> Self {
        let sink = |file| Sink {
            file,
            failing: false,
        };
        let stderr = stderr.map(|out| {
            let lines = MaskedLines {
                buf: Vec::new(),
                out,
                mask: mask.clone(),
            };
            slog_term::FullFormat::new(slog_term::PlainDecorator::new(lines))
                .use_utc_timestamp()
                .use_original_order()
                .build()
        });
        Router {
            level,
            mask,
            domains: Mutex::new(files.domains.map(sink)),
            errors: Mutex::new(sink(files.errors)),
            stderr,
            no_values: OwnedKVList::from(slog::o!()),
        }
    }
}

impl Drain for Router {
    type Ok = ();
    type Err = Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), Never> {
        let to_domain = record.level().is_at_least(self.level);
        let to_errors = record.level().is_at_least(Level::Error);
        if !to_domain && !to_errors {
            return Ok(());
        }
        let (domain, line) = json_line(record, values, &self.mask);
        if to_domain {
            let mut sinks = self.domains.lock().unwrap_or_else(|p| p.into_inner());
            sinks[domain.index()].write(line.as_bytes());
        }
        if to_errors {
            let mut sink = self.errors.lock().unwrap_or_else(|p| p.into_inner());
            sink.write(line.as_bytes());
        }
        if let (true, Some(stderr)) = (to_domain, &self.stderr) {
            // The loggers' key-values travel with the record's, through the same filter.
            let kvs = ForStderr(record.kv(), values);
            let rs = RecordStatic {
                location: record.location(),
                tag: record.tag(),
                level: record.level(),
            };
            let plain = Record::new(&rs, record.msg(), slog::BorrowedKV(&kvs));
            let _ = stderr.log(&plain, &self.no_values);
        }
        Ok(())
    }
}

/// Formats one record as one masked JSON object followed by `\n`, and returns the
/// domain whose file it belongs to.
///
/// Masking happens twice: every key and string value is masked before encoding (and a
/// value under a sensitive key is replaced whole), then the encoded line is masked
/// again. If the second pass ever produced invalid JSON, the first-pass line (already
/// masked field by field, and valid by construction) is written instead.
pub(super) fn json_line(
    record: &Record<'_>,
    values: &OwnedKVList,
    mask: &SecretMask,
) -> (LogDomain, String) {
    let mut fields = Collector::default();
    // slog serialises the record's key-values first, then the loggers' from the newest,
    // each group in reverse order of declaration.
    let _ = record.kv().serialize(record, &mut fields);
    let _ = values.serialize(record, &mut fields);

    let domain = fields
        .domain
        .as_deref()
        .and_then(LogDomain::parse)
        .unwrap_or(LogDomain::App);
    let ts = fields
        .ts_ms
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .unwrap_or_else(Utc::now)
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    let msg = fmt::format(*record.msg());

    let mut line = String::with_capacity(256);
    line.push('{');
    push_field(&mut line, "ts", &Value::String(ts));
    push_field(&mut line, "level", &Value::from(record.level().as_str()));
    push_field(
        &mut line,
        "msg",
        &Value::String(mask.mask(&msg).into_owned()),
    );
    push_field(&mut line, DOMAIN_KEY, &Value::from(domain.as_str()));
    for (key, value) in fields.in_declaration_order() {
        let value = if SecretMask::is_sensitive_key(&key) {
            Value::from(MASK)
        } else {
            mask_value(mask, value)
        };
        let key = mask.mask(&key).into_owned();
        if RESERVED.contains(&key.as_str()) {
            push_field(&mut line, &format!("kv_{key}"), &value);
        } else {
            push_field(&mut line, &key, &value);
        }
    }
    line.push('}');

    let line = match mask.mask(&line) {
        Cow::Borrowed(_) => line,
        Cow::Owned(masked) => {
            if serde_json::from_str::<serde::de::IgnoredAny>(&masked).is_ok() {
                masked
            } else {
                line
            }
        }
    };
    (domain, line + "\n")
}

fn mask_value(mask: &SecretMask, value: Value) -> Value {
    match value {
        Value::String(s) => match mask.mask(&s) {
            Cow::Borrowed(_) => Value::String(s),
            Cow::Owned(m) => Value::String(m),
        },
        Value::Number(n) => {
            let text = n.to_string();
            match mask.mask(&text) {
                Cow::Borrowed(_) => Value::Number(n),
                Cow::Owned(m) => Value::String(m),
            }
        }
        other => other,
    }
}

fn push_field(line: &mut String, key: &str, value: &Value) {
    if !line.ends_with('{') {
        line.push(',');
    }
    // Encoding a `str` or a `Value` into a `String` cannot fail; the fallbacks only keep
    // the line valid if it somehow did.
    line.push_str(&serde_json::to_string(key).unwrap_or_else(|_| "\"?\"".into()));
    line.push(':');
    line.push_str(&serde_json::to_string(value).unwrap_or_else(|_| "null".into()));
}

/// Collects key-values as JSON values, plus the internal timestamp and the domain.
#[derive(Default)]
struct Collector {
    kvs: Vec<(String, Value)>,
    domain: Option<String>,
    ts_ms: Option<i64>,
}

impl Collector {
    fn push(&mut self, key: Key, value: Value) {
        // Both are set once, in front of everything else; the first one is the newest.
        if key == TS_KEY {
            if self.ts_ms.is_none() {
                self.ts_ms = value.as_i64();
            }
        } else if key == DOMAIN_KEY {
            if self.domain.is_none() {
                self.domain = Some(match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                });
            }
        } else {
            self.kvs.push((key.to_string(), value));
        }
    }

    /// Oldest logger's key-values first, the record's last, each in declaration order;
    /// a repeated key keeps its first position and takes the newest value (the record's
    /// over a logger's, a child logger's over its parent's).
    fn in_declaration_order(self) -> Vec<(String, Value)> {
        let mut ordered: Vec<(String, Value)> = Vec::with_capacity(self.kvs.len());
        for (key, value) in self.kvs.into_iter().rev() {
            match ordered.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => ordered.push((key, value)),
            }
        }
        ordered
    }
}

macro_rules! emit_number {
    ($($name:ident: $t:ty),* $(,)?) => {
        $(fn $name(&mut self, key: Key, val: $t) -> slog::Result {
            self.push(key, Value::from(val));
            Ok(())
        })*
    };
}

impl Serializer for Collector {
    emit_number!(
        emit_usize: usize, emit_isize: isize, emit_u8: u8, emit_i8: i8, emit_u16: u16,
        emit_i16: i16, emit_u32: u32, emit_i32: i32, emit_u64: u64, emit_i64: i64,
    );

    fn emit_f32(&mut self, key: Key, val: f32) -> slog::Result {
        self.emit_f64(key, f64::from(val))
    }

    fn emit_f64(&mut self, key: Key, val: f64) -> slog::Result {
        let value = serde_json::Number::from_f64(val)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(val.to_string()));
        self.push(key, value);
        Ok(())
    }

    fn emit_bool(&mut self, key: Key, val: bool) -> slog::Result {
        self.push(key, Value::Bool(val));
        Ok(())
    }

    fn emit_unit(&mut self, key: Key) -> slog::Result {
        self.push(key, Value::Null);
        Ok(())
    }

    fn emit_none(&mut self, key: Key) -> slog::Result {
        self.push(key, Value::Null);
        Ok(())
    }

    fn emit_str(&mut self, key: Key, val: &str) -> slog::Result {
        self.push(key, Value::from(val));
        Ok(())
    }

    fn emit_arguments(&mut self, key: Key, val: &fmt::Arguments<'_>) -> slog::Result {
        self.push(key, Value::String(fmt::format(*val)));
        Ok(())
    }
}

/// A record's and its loggers' key-values as stderr shows them: without the internal
/// timestamp, and with the value of a sensitive key replaced whole, as in the JSON line.
struct ForStderr<'a>(slog::BorrowedKV<'a>, &'a OwnedKVList);

impl KV for ForStderr<'_> {
    fn serialize(&self, record: &Record<'_>, serializer: &mut dyn Serializer) -> slog::Result {
        let mut filter = StderrSerializer { inner: serializer };
        self.0.serialize(record, &mut filter)?;
        self.1.serialize(record, &mut filter)
    }
}

struct StderrSerializer<'a> {
    inner: &'a mut dyn Serializer,
}

impl Serializer for StderrSerializer<'_> {
    fn emit_str(&mut self, key: Key, val: &str) -> slog::Result {
        if key == TS_KEY {
            Ok(())
        } else if SecretMask::is_sensitive_key(key) {
            self.inner.emit_str(key, MASK)
        } else {
            self.inner.emit_str(key, val)
        }
    }

    fn emit_arguments(&mut self, key: Key, val: &fmt::Arguments<'_>) -> slog::Result {
        if key == TS_KEY {
            Ok(())
        } else if SecretMask::is_sensitive_key(key) {
            self.inner.emit_str(key, MASK)
        } else {
            self.inner.emit_arguments(key, val)
        }
    }
}

/// Buffers what slog-term writes for one record and, on flush (once per record),
/// writes the masked text with a single write.
pub(super) struct MaskedLines {
    buf: Vec<u8>,
    out: Box<dyn Write + Send>,
    mask: SecretMask,
}

impl Write for MaskedLines {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buf);
        let written = self.out.write_all(self.mask.mask(&text).as_bytes());
        self.buf.clear();
        written.and_then(|()| self.out.flush())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slog::{o, Logger};
    use std::sync::Arc;

    /// Formats records synchronously, as the logging thread would.
    struct Capture {
        mask: SecretMask,
        lines: Arc<Mutex<Vec<String>>>,
    }

    impl Drain for Capture {
        type Ok = ();
        type Err = Never;
        fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), Never> {
            let (_, line) = json_line(record, values, &self.mask);
            self.lines.lock().unwrap().push(line);
            Ok(())
        }
    }

    fn logged(mask: SecretMask, log: impl FnOnce(&Logger)) -> Value {
        serde_json::from_str(&logged_line(mask, log)).unwrap()
    }

    fn logged_line(mask: SecretMask, log: impl FnOnce(&Logger)) -> String {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let capture = Capture {
            mask,
            lines: lines.clone(),
        };
        log(&Logger::root(
            capture,
            o!("component" => "root", "account_id" => "acc-1"),
        ));
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].ends_with("}\n") && lines[0].matches('\n').count() == 1);
        lines[0].clone()
    }

    #[test]
    fn key_values_keep_declaration_order_and_the_newest_value() {
        let line = logged_line(SecretMask::default(), |root| {
            let child = root.new(o!("component" => "execution", "symbol" => "BTCUSDT"));
            slog::info!(child, "m"; "cycle_id" => "c-1", "qty" => 2, "symbol" => "ETHUSDT");
        });
        let rest = line.split_once(r#""domain":"app","#).unwrap().1;
        assert_eq!(
            rest,
            r#""component":"execution","account_id":"acc-1","symbol":"ETHUSDT","cycle_id":"c-1","qty":2}"#.to_string() + "\n"
        );
        assert!(line.starts_with(r#"{"ts":""#));
        assert!(line.contains(r#"","level":"INFO","msg":"m","domain":"app","#));
    }

    #[test]
    fn a_numeric_secret_becomes_a_masked_string() {
        let line = logged(SecretMask::new(["987654321".to_string()]), |root| {
            slog::info!(root, "m"; "order_id" => 98_765_432_100u64, "n" => 7);
        });
        assert_eq!(line["order_id"], "***00");
        assert_eq!(line["n"], 7);
    }

    #[test]
    fn a_secret_that_spans_json_structure_cannot_break_the_line() {
        // Masking the encoded line would turn `"k":"xa","b":1` into `"k":"x***":1`.
        let line = logged(SecretMask::new([r#"a","b"#.to_string()]), |root| {
            slog::info!(root, "m"; "k" => "xa", "b" => 1, "c" => r#"a","b"#);
        });
        assert_eq!(line["k"], "xa");
        assert_eq!(line["b"], 1);
        assert_eq!(line["c"], "***");
    }
}
