//! Span fields as one JSON object, written straight into the span's buffer: the same object
//! `JsonFields` writes, without the map of values it builds and serializes for every span. A
//! request span is made on every request, and its fields are read back only when a line is
//! logged inside it, so making it must cost little.

use std::fmt::{self, Write};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

/// The field formatter of the JSON logger's spans.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpanFields;

/// Writes `"name":value` entries of one object; `{` before the first, `}` by [`close`].
struct Entries<'a, W: Write> {
    out: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<W: Write> Entries<'_, W> {
    /// `{` before the first entry, `,` before the others.
    fn separator(&mut self) -> char {
        if std::mem::take(&mut self.first) {
            '{'
        } else {
            ','
        }
    }

    fn entry(&mut self, name: &str, value: impl Serialize) {
        if self.result.is_err() {
            return;
        }
        let sep = self.separator();
        self.result = match serde_json::to_string(&value) {
            Ok(v) => write!(self.out, "{sep}\"{name}\":{v}"),
            Err(_) => Err(fmt::Error),
        };
    }

    /// Ends the object (`{}` when no field was written).
    fn close(self) -> fmt::Result {
        self.result?;
        self.out.write_str(if self.first { "{}" } else { "}" })
    }
}

impl<W: Write> Visit for Entries<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let plain = value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
        if plain && self.result.is_ok() {
            // Nothing to escape (ids, methods, paths): written as is.
            // Piece by piece: no formatting pass.
            let sep = self.separator();
            let out = &mut *self.out;
            self.result = (|| {
                out.write_char(sep)?;
                out.write_char('"')?;
                out.write_str(field.name())?;
                out.write_str("\":\"")?;
                out.write_str(value)?;
                out.write_char('"')
            })();
        } else {
            self.entry(field.name(), value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field.name(), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field.name(), value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.entry(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field.name(), format!("{value:?}"));
    }
}

impl<'w> FormatFields<'w> for SpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut entries = Entries {
            out: &mut writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut entries);
        entries.close()
    }

    /// Fields recorded later join the object: its `}` is reopened, and the new entries follow.
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let buf = &mut current.fields;
        let first = buf.is_empty() || buf == "{}";
        if first {
            buf.clear();
        } else if buf.pop() != Some('}') {
            return Err(fmt::Error);
        }
        let mut entries = Entries {
            out: buf,
            first,
            result: Ok(()),
        };
        fields.record(&mut entries);
        entries.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The `span` object of the one line logged inside a span made by `make`.
    fn logged_span(make: impl FnOnce() -> tracing::Span) -> serde_json::Value {
        let lines = Lines::default();
        let out = lines.clone();
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(SpanFields)
            .with_writer(move || out.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            make().in_scope(|| tracing::info!("inside"));
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        line["span"].clone()
    }

    #[test]
    fn fields_of_every_kind_read_back_as_the_values_given() {
        let id = "c-1";
        let path = "/v1/kv/\"odd\\key\"\n\u{e9}";
        let span = logged_span(|| {
            tracing::info_span!("request", correlation_id = %id, method = "GET", path, n = -3i64, ok = true,
                big = u64::MAX, ratio = 0.5, dbg = ?("a", 1))
        });
        assert_eq!(
            span,
            serde_json::json!({"name": "request", "correlation_id": "c-1", "method": "GET", "path": path,
                "n": -3, "ok": true, "big": u64::MAX, "ratio": 0.5, "dbg": "(\"a\", 1)"})
        );
    }

    #[test]
    fn fields_recorded_later_join_the_object() {
        let span = logged_span(|| {
            let s = tracing::info_span!("task", a = 1u64, b = tracing::field::Empty);
            s.record("b", "late");
            s
        });
        assert_eq!(
            span,
            serde_json::json!({"name": "task", "a": 1, "b": "late"})
        );
        let span = logged_span(|| {
            let s = tracing::info_span!("empty", b = tracing::field::Empty);
            s.record("b", 2u64);
            s
        });
        assert_eq!(span, serde_json::json!({"name": "empty", "b": 2}));
    }
}
