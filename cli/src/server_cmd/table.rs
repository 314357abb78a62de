//! Tables for people: the server's JSON objects as aligned columns, one row each, and
//! single objects as `key: value` lines.

use serde_json::Value;

/// One column: its header and how a row's cell is read from the object.
pub(crate) struct Col {
    /// The header.
    pub(crate) header: &'static str,
    /// The cell.
    pub(crate) cell: fn(&Value) -> String,
}

/// A column of field `key` shown as text (empty for null or absent).
macro_rules! col {
    ($header:literal, $key:literal) => {
        $crate::server_cmd::table::Col {
            header: $header,
            cell: |v| $crate::server_cmd::table::text(&v[$key]),
        }
    };
    ($header:literal, $cell:expr) => {
        $crate::server_cmd::table::Col {
            header: $header,
            cell: $cell,
        }
    };
}
pub(crate) use col;

/// `rows` as a table with a header line; "(none)" when there are no rows.
pub(crate) fn render(rows: &[Value], cols: &[Col]) -> String {
    if rows.is_empty() {
        return "(none)".to_owned();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| cols.iter().map(|c| one_line((c.cell)(r))).collect())
        .collect();
    let mut widths: Vec<usize> = cols.iter().map(|c| c.header.chars().count()).collect();
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |items: Vec<&str>| {
        let mut out = String::new();
        for (i, (item, w)) in items.iter().zip(&widths).enumerate() {
            if i + 1 == items.len() {
                out.push_str(item);
            } else {
                out.push_str(item);
                let pad = w.saturating_sub(item.chars().count()) + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.trim_end().to_owned()
    };
    let mut lines = vec![line(cols.iter().map(|c| c.header).collect())];
    for row in &cells {
        lines.push(line(row.iter().map(String::as_str).collect()));
    }
    lines.join("\n")
}

/// `pairs` as aligned `key: value` lines.
pub(crate) fn details(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {}", one_line(v.clone())))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The array at `key` of `value` (empty if there is none).
pub(crate) fn rows<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map_or(&[], Vec::as_slice)
}

/// A JSON value as a cell: strings bare, null empty, arrays joined by commas.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// A byte count in binary units ("1.5 MiB"); empty for null.
pub(crate) fn bytes(v: &Value) -> String {
    v.as_u64().map_or_else(String::new, size)
}

/// `n` bytes in binary units.
pub(crate) fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS.get(unit).copied().unwrap_or("B"))
    }
}

/// A server time (RFC 3339) shortened to the second, in UTC as sent.
pub(crate) fn time(v: &Value) -> String {
    let t = text(v);
    match t.parse::<jiff::Timestamp>() {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
        Err(_) => t,
    }
}

/// Control characters (a newline in a log message, an escape in a path) would break
/// the table or the terminal: shown as `?`.
fn one_line(s: String) -> String {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_align_and_cells_are_one_line() {
        let rows = vec![
            json!({"id": "1", "name": "a\nb", "size": 2048}),
            json!({"id": "10", "name": "long name", "size": null}),
        ];
        let cols = [
            col!("ID", "id"),
            col!("NAME", "name"),
            col!("SIZE", |v| bytes(&v["size"])),
        ];
        let out = render(&rows, &cols);
        assert_eq!(
            out,
            "ID  NAME       SIZE\n1   a?b        2.0 KiB\n10  long name"
        );
        assert_eq!(render(&[], &cols), "(none)");
        assert_eq!(
            time(&json!("2024-05-01T03:00:00.5Z")),
            "2024-05-01 03:00:00Z"
        );
    }
}
