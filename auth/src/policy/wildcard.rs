//! IAM wildcard patterns (`*` any run of characters, `?` exactly one), compiled once when a
//! policy loads so matching a request is a walk over pre-split segments: no regex, no
//! allocation.
//!
//! In a `2012-10-17` policy, `${*}`, `${?}` and `${$}` stand for a literal `*`, `?` and `$`
//! (IAM user guide, "IAM policy elements: Variables and tags", special characters:
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html>). Any
//! other `${…}` is a policy variable, which Trellis does not substitute: the caller reports it.

use std::fmt;

/// One pattern position: a literal character or `?`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Lit(char),
    One,
}

/// The text between two `*`s.
#[derive(Clone, PartialEq, Eq)]
struct Segment {
    units: Box<[Unit]>,
    /// The segment as a string when it has no `?`: matched with byte compares and `str::find`
    /// rather than char by char (most patterns are like this, and it is several times faster).
    literal: Option<Box<str>>,
}

impl Segment {
    fn new(units: Vec<Unit>) -> Segment {
        let literal = units
            .iter()
            .map(|u| match u {
                Unit::Lit(c) => Some(*c),
                Unit::One => None,
            })
            .collect::<Option<String>>()
            .map(String::into_boxed_str);
        Segment {
            units: units.into_boxed_slice(),
            literal,
        }
    }

    fn is_empty(&self) -> bool {
        self.units.is_empty()
    }
}

/// A compiled pattern: the segments between `*`s.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Wildcard {
    /// `segments.len() - 1` stars separate the segments; a pattern without `*` has one segment.
    segments: Box<[Segment]>,
    /// The pattern is `*` (or only stars): matches everything.
    any: bool,
    /// Compare ASCII letters without case (actions); the pattern is stored lowercased.
    ignore_case: bool,
}

impl fmt::Debug for Wildcard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                text.push('*');
            }
            for unit in segment.units.iter() {
                match unit {
                    Unit::Lit(c) => text.push(*c),
                    Unit::One => text.push('?'),
                }
            }
        }
        write!(f, "Wildcard({text:?})")
    }
}

/// Why a pattern could not be compiled: it holds a policy variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PolicyVariable(pub String);

/// Splits `text` into chars, calling `out` with `Ok(c)` for a literal (an escaped `*`, `?` or
/// `$` included) and `Err(c)` for an unescaped `*` or `?`.
fn scan(
    text: &str,
    escapes: bool,
    mut out: impl FnMut(Result<char, char>),
) -> Result<(), PolicyVariable> {
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if escapes && rest.starts_with("${") {
            let Some(end) = rest.find('}') else {
                return Err(PolicyVariable(rest.to_string()));
            };
            let inner = rest.get(2..end).unwrap_or_default();
            match inner {
                "*" | "?" | "$" => out(Ok(inner.chars().next().unwrap_or('$'))),
                _ => return Err(PolicyVariable(rest.get(..=end).unwrap_or(rest).to_string())),
            }
            rest = rest.get(end + 1..).unwrap_or_default();
            continue;
        }
        out(if c == '*' || c == '?' { Err(c) } else { Ok(c) });
        rest = rest.get(c.len_utf8()..).unwrap_or_default();
    }
    Ok(())
}

/// The literal text of a value with escapes resolved, for operators without wildcards
/// (`StringEquals`): `${*}` there is a plain `*`.
pub(crate) fn unescape(text: &str, escapes: bool) -> Result<String, PolicyVariable> {
    let mut out = String::with_capacity(text.len());
    scan(text, escapes, |unit| match unit {
        Ok(c) | Err(c) => out.push(c),
    })?;
    Ok(out)
}

impl Wildcard {
    /// Compiles `pattern`. `ignore_case` folds ASCII letters (action names are
    /// case-insensitive); `escapes` turns on `${*}`-style escapes (2012-10-17 policies).
    pub(crate) fn new(
        pattern: &str,
        ignore_case: bool,
        escapes: bool,
    ) -> Result<Wildcard, PolicyVariable> {
        let mut segments: Vec<Segment> = Vec::new();
        let mut current: Vec<Unit> = Vec::new();
        scan(pattern, escapes, |unit| match unit {
            Err('*') => segments.push(Segment::new(std::mem::take(&mut current))),
            Err(_) => current.push(Unit::One),
            Ok(c) if ignore_case => current.push(Unit::Lit(c.to_ascii_lowercase())),
            Ok(c) => current.push(Unit::Lit(c)),
        })?;
        segments.push(Segment::new(current));
        let any = segments.len() > 1 && segments.iter().all(|s| s.is_empty());
        Ok(Wildcard {
            segments: segments.into_boxed_slice(),
            any,
            ignore_case,
        })
    }

    /// Whether the pattern matches all of `text`.
    pub(crate) fn matches(&self, text: &str) -> bool {
        self.any || self.match_segments(text).is_some()
    }

    fn match_segments(&self, text: &str) -> Option<()> {
        let ci = self.ignore_case;
        let (first, rest) = self.segments.split_first()?;
        let Some((last, middle)) = rest.split_last() else {
            // No star: the single segment must cover the whole text.
            return (prefix_len(first, text, ci)? == text.len()).then_some(());
        };
        let start = prefix_len(first, text, ci)?;
        let tail = text.get(start..)?;
        let end = suffix_start(last, tail, ci)?;
        let mut between = tail.get(..end)?;
        // Leftmost-first placement of each middle segment is optimal: every segment has a
        // fixed length, so the earliest end leaves the most room for the ones after it.
        for segment in middle.iter().filter(|s| !s.is_empty()) {
            let found = find_end(segment, between, ci)?;
            between = between.get(found..)?;
        }
        Some(())
    }
}

fn unit_matches(unit: Unit, c: char, ignore_case: bool) -> bool {
    match unit {
        Unit::One => true,
        Unit::Lit(p) => p == c || (ignore_case && p == c.to_ascii_lowercase()),
    }
}

/// Compares bytes, ASCII letters without case when `ci` (the pattern is stored lowercased).
fn bytes_match(text: &[u8], literal: &[u8], ci: bool) -> bool {
    if ci {
        text.eq_ignore_ascii_case(literal)
    } else {
        text == literal
    }
}

// The literal paths below compare bytes, yet only ever cut `text` at char boundaries: bytes
// equal to a UTF-8 string (up to ASCII case) start with a lead byte and end where it ends.

/// If `segment` matches the start of `text`, the byte length it covers.
fn prefix_len(segment: &Segment, text: &str, ci: bool) -> Option<usize> {
    if let Some(literal) = &segment.literal {
        let head = text.as_bytes().get(..literal.len())?;
        return bytes_match(head, literal.as_bytes(), ci).then_some(literal.len());
    }
    let mut chars = text.char_indices();
    for unit in segment.units.iter() {
        let (_, c) = chars.next()?;
        if !unit_matches(*unit, c, ci) {
            return None;
        }
    }
    Some(chars.offset())
}

/// If `segment` matches the end of `text`, the byte index where it starts.
fn suffix_start(segment: &Segment, text: &str, ci: bool) -> Option<usize> {
    if let Some(literal) = &segment.literal {
        let start = text.len().checked_sub(literal.len())?;
        let tail = text.as_bytes().get(start..)?;
        return bytes_match(tail, literal.as_bytes(), ci).then_some(start);
    }
    let mut chars = text.char_indices().rev();
    let mut start = text.len();
    for unit in segment.units.iter().rev() {
        let (i, c) = chars.next()?;
        if !unit_matches(*unit, c, ci) {
            return None;
        }
        start = i;
    }
    Some(start)
}

/// The byte index just after the leftmost occurrence of `segment` in `text`.
fn find_end(segment: &Segment, text: &str, ci: bool) -> Option<usize> {
    match &segment.literal {
        // `windows(0)` would panic; an empty segment matches at once.
        Some(literal) if literal.is_empty() => Some(0),
        Some(literal) if !ci => text.find(&**literal).map(|i| i + literal.len()),
        Some(literal) => text
            .as_bytes()
            .windows(literal.len())
            .position(|w| w.eq_ignore_ascii_case(literal.as_bytes()))
            .map(|i| i + literal.len()),
        None => text
            .char_indices()
            .map(|(i, _)| i)
            .find_map(|i| Some(i + prefix_len(segment, text.get(i..)?, ci)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Wildcard::new(pattern, false, true).unwrap().matches(text)
    }

    #[test]
    fn stars_and_question_marks() {
        let cases = [
            ("*", "", true),
            ("*", "anything/at:all", true),
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("abc", "ab", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a*", "a", true),
            ("a*", "ba", false),
            ("*a", "ba", true),
            ("*a", "ab", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "a-b-b-c", true),
            ("a*b*c", "a-c-b", false),
            ("*/admin*", "arn:x/svc/admin", true),
            ("*/admin*", "arn:x/svc/administrator/x", true),
            ("*/admin*", "arn:x/svc/user", false),
            ("ab*ba", "aba", false),
            ("ab*ba", "abba", true),
            ("**", "x", true),
            ("a**b", "ab", true),
            ("?", "é", true),
            ("?", "", false),
            ("é*?", "éa", true),
            ("*?x*", "yx", true),
            ("*?x*", "x", false),
            // Middle segments may not overlap.
            ("*ab*bc*", "abc", false),
            ("*ab*bc*", "abbc", true),
            ("x*ab*bc*y", "xabcy", false),
            ("*é*", "aéb", true),
            ("é*é", "é", false),
            ("*bé", "aébé", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(m(pattern, text), expected, "{pattern:?} vs {text:?}");
        }
    }

    #[test]
    fn escapes_are_literal_and_variables_refused() {
        assert!(m("a${*}b", "a*b"));
        assert!(!m("a${*}b", "axb"));
        assert!(m("${?}", "?"));
        assert!(!m("${?}", "x"));
        assert!(m("${$}x", "$x"));
        assert_eq!(
            Wildcard::new("a${aws:username}", false, true).unwrap_err(),
            PolicyVariable("${aws:username}".into())
        );
        assert!(Wildcard::new("${unclosed", false, true).is_err());
        // 2008-10-17: no escapes, `${` is plain text.
        assert!(
            Wildcard::new("${aws:username}", false, false)
                .unwrap()
                .matches("${aws:username}")
        );
        assert_eq!(unescape("a${*}${$}", true).unwrap(), "a*$");
        assert_eq!(unescape("a*?", true).unwrap(), "a*?");
    }

    #[test]
    fn ignore_case_folds_ascii() {
        let w = Wildcard::new("vpc-lattice-svcs:Inv*", true, false).unwrap();
        assert!(w.matches("VPC-Lattice-Svcs:invoke"));
        assert!(!w.matches("vpc-lattice-svcs:Connect"));
        let w = Wildcard::new("*:INV*é*", true, false).unwrap();
        assert!(w.matches("VPC-LATTICE-SVCS:invokeé"));
        assert!(!w.matches("VPC-LATTICE-SVCS:invokeÉ"));
        assert!(!w.matches("vpc-lattice-svcs:Connect"));
    }
}
