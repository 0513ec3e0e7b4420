//! Strings that match a regular expression, for datagen's `regex` hint (`User_[1-9]{0,1}`).
//!
//! The pattern is parsed by `regex-syntax` (the parser behind `regex`) and the generator walks
//! its high-level form: a literal is copied, a class gives one of its characters (printable ASCII
//! ones when the class has any, so `\d` and `.` stay readable), an alternation picks a branch,
//! a repetition `{n,m}` repeats its body a uniform number of times in `n..=m` (unbounded ones, as
//! `*` and `+`, at most [`MAX_UNBOUNDED_EXTRA`] times more than their minimum), and anchors and
//! word boundaries give nothing. No I/O; the caller brings the random source.

use rand::RngExt;
use regex_syntax::hir::{Class, ClassUnicode, ClassUnicodeRange, Hir, HirKind};

/// How many repetitions beyond its minimum an unbounded repetition (`*`, `+`, `{n,}`) makes.
const MAX_UNBOUNDED_EXTRA: u32 = 8;

/// A parsed pattern that generates matching strings.
#[derive(Debug, Clone)]
pub struct RegexGen {
    hir: Hir,
}

impl RegexGen {
    /// Parses `pattern`; the error says what is wrong with it.
    pub fn new(pattern: &str) -> Result<RegexGen, String> {
        let hir = regex_syntax::Parser::new()
            .parse(pattern)
            .map_err(|e| e.to_string())?;
        Ok(RegexGen { hir })
    }

    /// A string that matches the pattern.
    pub fn generate<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> String {
        let mut out = String::new();
        emit(&self.hir, rng, &mut out);
        out
    }
}

fn emit<R: rand::Rng + ?Sized>(hir: &Hir, rng: &mut R, out: &mut String) {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(literal) => out.push_str(&String::from_utf8_lossy(&literal.0)),
        HirKind::Class(Class::Unicode(class)) => {
            if let Some(c) = pick_char(class, rng) {
                out.push(c);
            }
        }
        HirKind::Class(Class::Bytes(class)) => {
            // Only with Unicode switched off inside the pattern (`(?-u)`); keep ASCII bytes.
            let ascii: Vec<u8> = class
                .iter()
                .flat_map(|r| r.start()..=r.end())
                .filter(u8::is_ascii)
                .collect();
            if !ascii.is_empty() {
                out.push(char::from(ascii[rng.random_range(0..ascii.len())]));
            }
        }
        HirKind::Repetition(repetition) => {
            let max = repetition
                .max
                .unwrap_or(repetition.min.saturating_add(MAX_UNBOUNDED_EXTRA));
            let times = rng.random_range(repetition.min..=max.max(repetition.min));
            for _ in 0..times {
                emit(&repetition.sub, rng, out);
            }
        }
        HirKind::Capture(capture) => emit(&capture.sub, rng, out),
        HirKind::Concat(parts) => {
            for part in parts {
                emit(part, rng, out);
            }
        }
        HirKind::Alternation(branches) => {
            if !branches.is_empty() {
                emit(&branches[rng.random_range(0..branches.len())], rng, out);
            }
        }
    }
}

/// One character of `class`, uniformly among its printable ASCII characters when it has any,
/// else among all of them.
fn pick_char<R: rand::Rng + ?Sized>(class: &ClassUnicode, rng: &mut R) -> Option<char> {
    let mut printable = class.clone();
    printable.intersect(&ClassUnicode::new([ClassUnicodeRange::new(' ', '~')]));
    let class = if printable.ranges().is_empty() {
        class
    } else {
        &printable
    };
    let total: u64 = class
        .ranges()
        .iter()
        .map(|r| u64::from(r.end()) - u64::from(r.start()) + 1)
        .sum();
    if total == 0 {
        return None;
    }
    let mut index = rng.random_range(0..total);
    for range in class.ranges() {
        let size = u64::from(range.end()) - u64::from(range.start()) + 1;
        if index < size {
            // Surrogates are not in Unicode classes, so the start plus an in-range index is a
            // char unless the range spans the surrogate gap; fall back to the start then.
            let code = u32::from(range.start()) + u32::try_from(index).unwrap_or(0);
            return Some(char::from_u32(code).unwrap_or(range.start()));
        }
        index -= size;
    }
    None
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn samples(pattern: &str) -> Vec<String> {
        let generator = RegexGen::new(pattern).expect("pattern parses");
        let mut rng = StdRng::seed_from_u64(7);
        (0..500).map(|_| generator.generate(&mut rng)).collect()
    }

    #[test]
    fn generated_strings_match_the_quickstart_patterns() {
        for pattern in [
            "User_[1-9]",
            "User_[1-9]{0,1}",
            "Page_[1-9][0-9]?",
            "BYOC_Item_[1-9][0-9]{0,2}",
            "City_[1-9]{0,2}",
            "(Moe|Larry|Curly)_[a-z]{2,4}\\d+",
            "^[A-Z]{3}-\\w*.$",
        ] {
            let full = regex::Regex::new(&format!("^(?:{pattern})$")).expect("valid");
            for sample in samples(pattern) {
                assert!(
                    full.is_match(&sample),
                    "{sample:?} does not match {pattern}"
                );
            }
        }
    }

    #[test]
    fn repetitions_reach_both_bounds_and_alternations_every_branch() {
        let lengths: std::collections::BTreeSet<usize> =
            samples("x[1-9]{0,2}").iter().map(String::len).collect();
        assert_eq!(lengths.into_iter().collect::<Vec<_>>(), vec![1, 2, 3]);
        let branches: std::collections::BTreeSet<String> = samples("(a|b|c)").into_iter().collect();
        assert_eq!(branches.len(), 3);
    }

    #[test]
    fn classes_prefer_printable_ascii() {
        for sample in samples("\\d\\w.") {
            assert!(
                sample.chars().all(|c| c.is_ascii_graphic() || c == ' '),
                "{sample:?}"
            );
        }
    }

    #[test]
    fn a_bad_pattern_is_refused() {
        assert!(RegexGen::new("User_[1-9").is_err());
    }
}
