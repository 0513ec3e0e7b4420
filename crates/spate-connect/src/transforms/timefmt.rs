//! The common subset of Java's `SimpleDateFormat` patterns, always in UTC, as
//! `TimestampConverter` and `TimestampRouter` set it: `y M d H h m s S a E D Z X z` and quoted
//! literals (`'T'`, `''`). Parsing is lenient as Java's: out-of-range fields roll over and
//! trailing text is ignored.

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(String),
    Field(char, usize),
}

/// A parsed pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    toks: Vec<Tok>,
    /// The start of the 100-year window for two-digit years (Java: 80 years before now).
    century_start: i64,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

impl Pattern {
    /// Parses a pattern; Err names the first letter Spate does not support.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut toks = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                if chars.get(i + 1) == Some(&'\'') {
                    lit.push('\'');
                    i += 2;
                    continue;
                }
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated quote".into()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            lit.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            lit.push(ch);
                            i += 1;
                        }
                    }
                }
            } else if c.is_ascii_alphabetic() {
                if !"yMdHhmsSaEDZXzu".contains(c) {
                    return Err(format!("illegal pattern character '{c}'"));
                }
                let mut n = 1;
                while chars.get(i + n) == Some(&c) {
                    n += 1;
                }
                if !lit.is_empty() {
                    toks.push(Tok::Lit(std::mem::take(&mut lit)));
                }
                toks.push(Tok::Field(c, n));
                i += n;
            } else {
                lit.push(c);
                i += 1;
            }
        }
        if !lit.is_empty() {
            toks.push(Tok::Lit(lit));
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let (year, _, _) = civil_from_days(now_ms.div_euclid(86_400_000));
        Ok(Pattern {
            text: text.to_string(),
            toks,
            century_start: year - 80,
        })
    }

    /// The pattern as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Formats milliseconds since the epoch, in UTC.
    pub fn format(&self, ms: i64) -> String {
        let days = ms.div_euclid(86_400_000);
        let in_day = ms.rem_euclid(86_400_000);
        let (y, mo, d) = civil_from_days(days);
        let (h, mi, s, milli) = (
            in_day / 3_600_000,
            in_day / 60_000 % 60,
            in_day / 1000 % 60,
            in_day % 1000,
        );
        let mut out = String::new();
        for tok in &self.toks {
            match tok {
                Tok::Lit(l) => out.push_str(l),
                Tok::Field(c, n) => {
                    let n = *n;
                    let num = |v: i64| format!("{v:0n$}");
                    out.push_str(&match c {
                        'y' | 'u' if n == 2 => format!("{:02}", y.rem_euclid(100)),
                        'y' | 'u' => num(y),
                        'M' if n >= 4 => MONTHS[(mo - 1) as usize].to_string(),
                        'M' if n == 3 => MONTHS[(mo - 1) as usize][..3].to_string(),
                        'M' => num(mo),
                        'd' => num(d),
                        'D' => num(days - days_from_civil(y, 1, 1) + 1),
                        'H' => num(h),
                        'h' => num(if h % 12 == 0 { 12 } else { h % 12 }),
                        'm' => num(mi),
                        's' => num(s),
                        'S' => num(milli),
                        'a' => (if h < 12 { "AM" } else { "PM" }).to_string(),
                        'E' if n >= 4 => DAYS[days.rem_euclid(7) as usize].to_string(),
                        'E' => DAYS[days.rem_euclid(7) as usize][..3].to_string(),
                        'Z' => "+0000".to_string(),
                        'X' => "Z".to_string(),
                        _ => "UTC".to_string(),
                    });
                }
            }
        }
        out
    }

    /// Parses text to milliseconds since the epoch, in UTC; None when it does not match.
    pub fn parse_ms(&self, text: &str) -> Option<i64> {
        let b = text.as_bytes();
        let mut pos = 0;
        let (mut y, mut mo, mut d, mut h, mut mi, mut s, mut milli) =
            (1970i64, 1i64, 1i64, 0i64, 0i64, 0i64, 0i64);
        let mut day_of_year = None;
        let mut pm = None;
        let mut offset_ms = 0i64;
        for (i, tok) in self.toks.iter().enumerate() {
            match tok {
                Tok::Lit(l) => {
                    if !text.get(pos..)?.starts_with(l.as_str()) {
                        return None;
                    }
                    pos += l.len();
                }
                Tok::Field(c, n) => {
                    let next_numeric = matches!(self.toks.get(i + 1), Some(Tok::Field(nc, _)) if "yMdHhmsSDu".contains(*nc));
                    match c {
                        'M' if *n >= 3 => {
                            let rest = text.get(pos..)?;
                            let (idx, len) = MONTHS.iter().enumerate().find_map(|(k, m)| {
                                if rest
                                    .get(..m.len())
                                    .is_some_and(|r| r.eq_ignore_ascii_case(m))
                                {
                                    Some((k, m.len()))
                                } else if rest
                                    .get(..3)
                                    .is_some_and(|r| r.eq_ignore_ascii_case(&m[..3]))
                                {
                                    Some((k, 3))
                                } else {
                                    None
                                }
                            })?;
                            mo = idx as i64 + 1;
                            pos += len;
                        }
                        'E' => {
                            let rest = text.get(pos..)?;
                            let len = DAYS.iter().find_map(|m| {
                                if rest
                                    .get(..m.len())
                                    .is_some_and(|r| r.eq_ignore_ascii_case(m))
                                {
                                    Some(m.len())
                                } else if rest
                                    .get(..3)
                                    .is_some_and(|r| r.eq_ignore_ascii_case(&m[..3]))
                                {
                                    Some(3)
                                } else {
                                    None
                                }
                            })?;
                            pos += len;
                        }
                        'a' => {
                            let rest = text.get(pos..)?.get(..2)?;
                            pm = Some(match rest.to_ascii_uppercase().as_str() {
                                "AM" => false,
                                "PM" => true,
                                _ => return None,
                            });
                            pos += 2;
                        }
                        'Z' | 'X' | 'z' => {
                            let rest = text.get(pos..)?;
                            if rest.starts_with('Z') {
                                pos += 1;
                            } else if rest.starts_with("UTC") || rest.starts_with("GMT") {
                                pos += 3;
                            } else {
                                let sign = match rest.as_bytes().first()? {
                                    b'+' => 1,
                                    b'-' => -1,
                                    _ => return None,
                                };
                                let digits: String = rest
                                    .get(1..)?
                                    .chars()
                                    .filter(|c| *c != ':')
                                    .take(4)
                                    .collect();
                                let consumed = rest
                                    .get(1..)?
                                    .chars()
                                    .take_while(|c| c.is_ascii_digit() || *c == ':')
                                    .count();
                                let hh: i64 = digits.get(..2)?.parse().ok()?;
                                let mm: i64 =
                                    digits.get(2..4).and_then(|m| m.parse().ok()).unwrap_or(0);
                                offset_ms = sign * (hh * 60 + mm) * 60_000;
                                pos += 1 + consumed.min(5);
                            }
                        }
                        _ => {
                            let start = pos;
                            let mut end = pos;
                            let neg = *c == 'y' && b.get(pos) == Some(&b'-');
                            if neg {
                                end += 1;
                            }
                            while end < b.len()
                                && b[end].is_ascii_digit()
                                && (!next_numeric || end - start < *n)
                            {
                                end += 1;
                            }
                            let v: i64 = text.get(start..end)?.parse().ok()?;
                            let digits = end - start;
                            pos = end;
                            match c {
                                'y' | 'u' => {
                                    y = if *n <= 2 && digits == 2 {
                                        // Java: the century within 80 years before, 20 after now.
                                        let base = self.century_start.div_euclid(100) * 100 + v;
                                        if base < self.century_start {
                                            base + 100
                                        } else {
                                            base
                                        }
                                    } else {
                                        v
                                    }
                                }
                                'M' => mo = v,
                                'd' => d = v,
                                'D' => day_of_year = Some(v),
                                'H' => h = v,
                                'h' => h = v % 12,
                                'm' => mi = v,
                                's' => s = v,
                                _ => milli = v,
                            }
                        }
                    }
                }
            }
        }
        // Bounds keep the arithmetic below from overflowing on hostile input.
        if y.abs() > 300_000
            || [mo, d, h, mi, s, milli, day_of_year.unwrap_or(0)]
                .iter()
                .any(|v| v.abs() > 1_000_000_000)
        {
            return None;
        }
        if pm == Some(true) {
            h += 12;
        }
        // Lenient: months past 12 roll into the next year, days past the month's end onward.
        let y = y + (mo - 1).div_euclid(12);
        let mo = (mo - 1).rem_euclid(12) + 1;
        let days = match day_of_year {
            Some(doy) => days_from_civil(y, 1, 1) + doy - 1,
            None => days_from_civil(y, mo, 1) + d - 1,
        };
        Some(days * 86_400_000 + h * 3_600_000 + mi * 60_000 + s * 1000 + milli - offset_ms)
    }
}
