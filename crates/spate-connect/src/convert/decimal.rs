//! Connect's `Decimal` between its wire form (a big-endian two's-complement unscaled integer,
//! what `BigInteger.toByteArray()` gives) and decimal text (what `BigDecimal.toString()` prints
//! and what `new BigDecimal(String)` reads), without a big-number library: the numbers are a
//! few dozen digits and the arithmetic is schoolbook.

/// The most digits a decimal may have after rescaling to its schema's scale; a bound on the
/// work one JSON number (`1E+999999999`) can cause.
const MAX_DIGITS: usize = 10_000;

/// Why a decimal could not be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecimalError {
    /// Zero bytes: Java's `new BigInteger(new byte[0])` refuses them too.
    Empty,
    /// Not a decimal number.
    NotANumber,
    /// More digits after the point than the schema's scale (Java would keep the number's own
    /// scale; Spate's values carry the schema's).
    ScaleTooSmall { scale: i32 },
    /// Too many digits.
    TooLong,
}

impl std::fmt::Display for DecimalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecimalError::Empty => write!(f, "a decimal needs at least one byte"),
            DecimalError::NotANumber => write!(f, "not a decimal number"),
            DecimalError::ScaleTooSmall { scale } => write!(
                f,
                "the number has more digits after the point than the schema's scale {scale}"
            ),
            DecimalError::TooLong => write!(f, "more than {MAX_DIGITS} digits"),
        }
    }
}

/// The shortest two's-complement form of `bytes`, as `BigInteger.toByteArray()` gives it.
pub(crate) fn minimal(bytes: &[u8]) -> Result<Vec<u8>, DecimalError> {
    if bytes.is_empty() {
        return Err(DecimalError::Empty);
    }
    let mut start = 0;
    while start + 1 < bytes.len() {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    Ok(bytes[start..].to_vec())
}

/// `new BigDecimal(new BigInteger(bytes), scale).toString()`.
pub(crate) fn to_text(bytes: &[u8], scale: i32) -> Result<String, DecimalError> {
    if bytes.is_empty() {
        return Err(DecimalError::Empty);
    }
    let negative = bytes[0] & 0x80 != 0;
    let magnitude = if negative {
        negate(bytes)
    } else {
        bytes.to_vec()
    };
    let coeff = to_decimal_digits(&magnitude);
    Ok(big_decimal_string(negative, &coeff, scale))
}

/// `BigDecimal.toString()` of `±coeff × 10^-scale`: plain when the scale is not negative and
/// the adjusted exponent is at least -6, scientific (`1.23E+5`, `1E-7`) otherwise.
fn big_decimal_string(negative: bool, coeff: &str, scale: i32) -> String {
    let sign = if negative { "-" } else { "" };
    let len = coeff.len() as i64;
    let adjusted = -(scale as i64) + (len - 1);
    if scale >= 0 && adjusted >= -6 {
        let scale = scale as usize;
        if scale == 0 {
            format!("{sign}{coeff}")
        } else if coeff.len() > scale {
            let (int, frac) = coeff.split_at(coeff.len() - scale);
            format!("{sign}{int}.{frac}")
        } else {
            format!("{sign}0.{}{coeff}", "0".repeat(scale - coeff.len()))
        }
    } else {
        let (first, rest) = coeff.split_at(1);
        let point = if rest.is_empty() { "" } else { "." };
        let plus = if adjusted > 0 { "+" } else { "" };
        format!("{sign}{first}{point}{rest}E{plus}{adjusted}")
    }
}

/// The unscaled two's-complement bytes of decimal `text` (`12.3`, `-1E+2`) at `scale`.
pub(crate) fn from_text(text: &str, scale: i32) -> Result<Vec<u8>, DecimalError> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => {
            let exp: i64 = body[i + 1..]
                .parse()
                .map_err(|_| DecimalError::NotANumber)?;
            (&body[..i], exp)
        }
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(DecimalError::NotANumber);
    }
    let mut digits: String = format!("{int}{frac}");
    // The number is digits × 10^-own_scale.
    let own_scale = (frac.len() as i64).saturating_sub(exponent);
    let shift = i64::from(scale).saturating_sub(own_scale);
    if shift >= 0 {
        if (digits.len() as i64).saturating_add(shift) > MAX_DIGITS as i64 {
            return Err(DecimalError::TooLong);
        }
        digits.push_str(&"0".repeat(shift as usize));
    } else {
        let drop = usize::try_from(shift.unsigned_abs()).unwrap_or(usize::MAX);
        let keep = digits.len().saturating_sub(drop);
        if digits[keep..].bytes().any(|b| b != b'0') {
            return Err(DecimalError::ScaleTooSmall { scale });
        }
        digits.truncate(keep);
    }
    if digits.len() > MAX_DIGITS {
        return Err(DecimalError::TooLong);
    }
    let magnitude = from_decimal_digits(&digits);
    if negative {
        let mut with_sign = vec![0u8];
        with_sign.extend_from_slice(&magnitude);
        minimal(&negate(&with_sign))
    } else {
        let mut with_sign = vec![0u8];
        with_sign.extend_from_slice(&magnitude);
        minimal(&with_sign)
    }
}

/// The two's-complement negation of `bytes`, same width.
fn negate(bytes: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = bytes.iter().map(|b| !b).collect();
    for b in out.iter_mut().rev() {
        let (sum, carry) = b.overflowing_add(1);
        *b = sum;
        if !carry {
            break;
        }
    }
    out
}

/// Big-endian unsigned bytes from decimal digits (empty → `[]`).
fn from_decimal_digits(digits: &str) -> Vec<u8> {
    // Little-endian base-256 limbs.
    let mut limbs: Vec<u8> = Vec::new();
    for d in digits.bytes() {
        let mut carry = u32::from(d - b'0');
        for limb in limbs.iter_mut() {
            let v = u32::from(*limb) * 10 + carry;
            *limb = (v & 0xFF) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            limbs.push((carry & 0xFF) as u8);
            carry >>= 8;
        }
    }
    limbs.reverse();
    limbs
}

/// Decimal digits of big-endian unsigned bytes (`"0"` for zero).
fn to_decimal_digits(bytes: &[u8]) -> String {
    let mut num: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    let mut out = Vec::new();
    while !num.is_empty() {
        let mut rem = 0u32;
        for b in num.iter_mut() {
            let v = (rem << 8) | u32::from(*b);
            *b = (v / 10) as u8;
            rem = v % 10;
        }
        out.push(b'0' + rem as u8);
        let zeros = num.iter().take_while(|b| **b == 0).count();
        num.drain(..zeros);
    }
    if out.is_empty() {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_text_prints_as_big_decimal_to_string() {
        for (bytes, scale, want) in [
            (&[0x30, 0x39][..], 2, "123.45"),
            (&[0xCF, 0xC7], 2, "-123.45"),
            (&[0x00], 2, "0.00"),
            (&[0x01], 3, "0.001"),
            (&[0x01], 7, "1E-7"),
            (&[0x0C], 8, "1.2E-7"),
            (&[0x7B], -2, "1.23E+4"),
            (&[0x7B], 0, "123"),
            (&[0x00, 0x80], 0, "128"),
            (&[0xFF, 0x7F], 0, "-129"),
            (&[0x80], 0, "-128"),
            (
                &[0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
                1,
                "236118324143482260684.7",
            ),
        ] {
            assert_eq!(
                to_text(bytes, scale).expect("valid"),
                want,
                "{bytes:?} {scale}"
            );
        }
        assert_eq!(to_text(&[], 0), Err(DecimalError::Empty));
    }

    #[test]
    fn from_text_reads_as_big_decimal_at_the_schema_scale() {
        for (text, scale, want) in [
            ("123.45", 2, &[0x30, 0x39][..]),
            ("-123.45", 2, &[0xCF, 0xC7]),
            ("123.4", 2, &[0x30, 0x34]),
            ("1.2300", 2, &[0x7B]),
            ("1E+2", 0, &[0x64]),
            ("1.5e1", 0, &[0x0F]),
            ("0", 2, &[0x00]),
            ("-0.00", 2, &[0x00]),
            ("128", 0, &[0x00, 0x80]),
            ("-128", 0, &[0x80]),
            ("-129", 0, &[0xFF, 0x7F]),
            (
                "236118324143482260684.7",
                1,
                &[0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            ),
        ] {
            assert_eq!(
                from_text(text, scale).expect("valid"),
                want,
                "{text} {scale}"
            );
        }
        assert_eq!(
            from_text("1.234", 2),
            Err(DecimalError::ScaleTooSmall { scale: 2 })
        );
        assert_eq!(from_text("1E+999999999", 0), Err(DecimalError::TooLong));
        for bad in ["", ".", "1.2.3", "abc", "1e", "--1"] {
            assert_eq!(from_text(bad, 0), Err(DecimalError::NotANumber), "{bad}");
        }
    }

    #[test]
    fn minimal_strips_redundant_sign_bytes() {
        assert_eq!(minimal(&[0x00, 0x00, 0x7F]).expect("valid"), [0x7F]);
        assert_eq!(minimal(&[0x00, 0x80]).expect("valid"), [0x00, 0x80]);
        assert_eq!(minimal(&[0xFF, 0xFF, 0x80]).expect("valid"), [0x80]);
        assert_eq!(minimal(&[0xFF, 0x7F]).expect("valid"), [0xFF, 0x7F]);
        assert_eq!(minimal(&[0x00, 0x00]).expect("valid"), [0x00]);
    }
}
