//! Go's text formats where docker's image config and history use them: `time.Duration`
//! as HEALTHCHECK flags read it (`1m30s`) and as history prints it, and `%q` of a string
//! list (`["/bin/sh" "-c" "echo hi"]`, what BuildKit writes for CMD and ENTRYPOINT).

const NANOS_PER: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),  // µs, micro sign
    ("\u{3bc}s", 1_000), // μs, Greek mu
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Nanoseconds of a Go duration (`300ms`, `-1.5h`, `2h45m`); `None` when Go's
/// `time.ParseDuration` would refuse it (no unit, unknown unit, overflow).
pub fn parse_duration(text: &str) -> Option<i64> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let limit = 1u64 << 63;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        let int_len = digits(rest);
        let whole: u64 = if int_len == 0 {
            0
        } else {
            rest[..int_len].parse().ok().filter(|v| *v <= limit)?
        };
        rest = &rest[int_len..];
        let (mut fraction, mut scale, mut frac_len) = (0u64, 1f64, 0);
        if let Some(after) = rest.strip_prefix('.') {
            frac_len = digits(after);
            for d in after[..frac_len].bytes() {
                // Digits past what fits are dropped, as Go does.
                if let Some(f) = fraction
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(d - b'0')))
                    .filter(|f| *f <= limit)
                {
                    fraction = f;
                    scale *= 10.0;
                }
            }
            rest = &after[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return None;
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let per = NANOS_PER.iter().find(|(u, _)| *u == unit)?.1;
        rest = &rest[unit_len..];
        let mut value = whole.checked_mul(per).filter(|v| *v <= limit)?;
        if fraction > 0 {
            value = value
                .checked_add((fraction as f64 * (per as f64 / scale)) as u64)
                .filter(|v| *v <= limit)?;
        }
        total = total.checked_add(value).filter(|v| *v <= limit)?;
    }
    if negative {
        return Some((total as i128).wrapping_neg() as i64);
    }
    i64::try_from(total).ok()
}

/// Go's `time.Duration.String()`: `0s`, `500ms`, `1.5µs`, `1m30s`, `1h0m0s`.
pub fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let mut u = nanos.unsigned_abs();
    if u < 1_000_000_000 {
        let (unit, digits) = match u {
            0..1_000 => ("ns", 0),
            1_000..1_000_000 => ("µs", 3),
            _ => ("ms", 6),
        };
        let (whole, frac) = fraction(u, digits);
        return format!("{sign}{whole}{frac}{unit}");
    }
    let (seconds, frac) = fraction(u, 9);
    u = seconds;
    let mut out = format!("{}{frac}s", u % 60);
    u /= 60;
    if u > 0 {
        out = format!("{}m{out}", u % 60);
        u /= 60;
        if u > 0 {
            out = format!("{u}h{out}");
        }
    }
    format!("{sign}{out}")
}

/// Split `value` into its integer part and `.fraction` (trailing zeros dropped) at
/// `digits` decimal places, as Go's `fmtFrac` does.
fn fraction(value: u64, digits: u32) -> (u64, String) {
    let scale = 10u64.pow(digits);
    let frac = value % scale;
    if frac == 0 {
        return (value / scale, String::new());
    }
    let text = format!("{frac:0width$}", width = digits as usize);
    (value / scale, format!(".{}", text.trim_end_matches('0')))
}

/// `%q` of a `[]string`: each element Go-quoted, separated by spaces, in brackets.
pub fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// `%v` of a `[]string`: `[a b c]`, nothing quoted.
pub fn plain_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `strconv.Quote`: printable characters as they are, the usual backslash escapes,
/// `\xNN`, `\uNNNN` or `\UNNNNNNNN` for the rest. "Printable" follows Go's
/// `unicode.IsPrint` closely enough for text people write: control characters, spaces
/// other than U+0020 and invisible format characters are escaped.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

fn printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    let format_char = matches!(c,
        '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}'
        | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}' | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}' | '\u{e000}'..='\u{f8ff}');
    !(c.is_control() || c.is_whitespace() || format_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_go_reads_them() {
        let s = 1_000_000_000;
        for (text, nanos) in [
            ("0", 0),
            ("30s", 30 * s),
            ("1m30s", 90 * s),
            ("1.5s", 1_500_000_000),
            ("500ms", 500_000_000),
            ("1h2m", 3_720 * s),
            ("2h45m0.5s", 9_900 * s + 500_000_000),
            ("10us", 10_000),
            ("10µs", 10_000),
            (".5m", 30 * s),
            ("5.s", 5 * s),
            ("+3s", 3 * s),
            ("-3s", -3 * s),
            ("0s", 0),
        ] {
            assert_eq!(parse_duration(text), Some(nanos), "{text}");
        }
        for bad in [
            "",
            "30",
            "s",
            "1x",
            "1.s.",
            ".s",
            "1s2",
            "-",
            "3 s",
            "9999999999h",
            "1e3s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        let s = 1_000_000_000;
        for (nanos, text) in [
            (0, "0s"),
            (30 * s, "30s"),
            (90 * s, "1m30s"),
            (3_600 * s, "1h0m0s"),
            (1_500_000_000, "1.5s"),
            (500_000_000, "500ms"),
            (1_500, "1.5µs"),
            (999, "999ns"),
            (9_900 * s + 500_000_000, "2h45m0.5s"),
            (-2 * s, "-2s"),
        ] {
            assert_eq!(format_duration(nanos), text, "{nanos}");
        }
    }

    #[test]
    fn strings_quote_as_go_quotes_them() {
        assert_eq!(
            quote_list(&["/bin/sh".into(), "-c".into(), "echo \"hi\"\n".into()]),
            r#"["/bin/sh" "-c" "echo \"hi\"\n"]"#
        );
        assert_eq!(quote_list(&[]), "[]");
        assert_eq!(quote("a\\b\tc\u{1}\u{7f}"), r#""a\\b\tc\x01\x7f""#);
        assert_eq!(quote("héllo 世界"), "\"héllo 世界\"");
        assert_eq!(quote("nb\u{a0}sp\u{200b}"), r#""nb\u00a0sp\u200b""#);
        assert_eq!(plain_list(&["/a".into(), "/b c".into()]), "[/a /b c]");
    }
}
