//! Validation errors: what is wrong, where (the JSON path of the offending value, which the
//! config crate maps to a YAML line:col, or a line:col inside policy text) and how to fix it.

use std::fmt;

/// One step of a JSON path: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// Shows a path the way people write it: `Statement[2].Condition.StringEquals`; the empty path
/// (the policy as a whole) shows as `policy`.
pub struct DisplayPath<'a>(pub &'a [PathSegment]);

impl fmt::Display for DisplayPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("policy");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(key) if i == 0 => f.write_str(key)?,
                PathSegment::Key(key) => write!(f, ".{key}")?,
                PathSegment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// The kind of problem, so callers (and tests) can tell errors apart without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The policy is over [`super::MAX_POLICY_BYTES`].
    TooLarge,
    /// The text is not JSON (or repeats a key in one object).
    Syntax,
    /// A value has the wrong JSON type (e.g. a number where a string belongs).
    WrongType,
    /// A key the policy language does not have.
    UnknownField,
    /// A required element is absent.
    MissingField,
    /// Two elements that exclude each other (e.g. `Action` and `NotAction`), or `NotPrincipal`
    /// with `Allow`.
    Conflict,
    /// An empty list or object where at least one entry is needed.
    Empty,
    BadVersion,
    BadEffect,
    BadPrincipal,
    /// `Principal` or `NotPrincipal` in an identity-based policy, which applies to the identity
    /// it belongs to.
    PrincipalInIdentityPolicy,
    BadAction,
    BadResource,
    /// A condition operator that does not exist, or is not supported here.
    UnknownOperator,
    /// A condition key Lattice does not provide.
    UnknownConditionKey,
    /// A condition operator that cannot apply to the key's type (e.g. `IpAddress` on an ARN).
    TypeMismatch,
    /// A condition value the operator cannot use (a bad number, CIDR, ARN or boolean).
    BadConditionValue,
    /// Two statements with the same `Sid`.
    DuplicateSid,
    /// A policy variable (`${aws:username}`), which Trellis does not substitute.
    PolicyVariable,
}

/// One problem in a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub kind: ErrorKind,
    /// Where the offending value is; empty for the policy as a whole.
    pub path: Vec<PathSegment>,
    pub message: String,
    /// A suggested fix, such as the closest operator name.
    pub hint: Option<String>,
    /// 1-based line and column inside the policy text (when the policy came as text). Columns
    /// count bytes, as serde_json's do.
    pub at: Option<(usize, usize)>,
}

impl PolicyError {
    pub(crate) fn new(kind: ErrorKind, path: &[PathSegment], message: impl Into<String>) -> Self {
        PolicyError {
            kind,
            path: path.to_vec(),
            message: message.into(),
            hint: None,
            at: None,
        }
    }

    pub(crate) fn hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// The path as text, e.g. `Statement[0].Condition.StringEquals`.
    pub fn path_string(&self) -> String {
        DisplayPath(&self.path).to_string()
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", DisplayPath(&self.path))?;
        if let Some((line, column)) = self.at {
            write!(f, " (line {line}, column {column})")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {}

/// `path` with `key` appended.
pub(crate) fn key(path: &[PathSegment], key: &str) -> Vec<PathSegment> {
    let mut path = path.to_vec();
    path.push(PathSegment::Key(key.to_string()));
    path
}

/// `path` with `index` appended.
pub(crate) fn index(path: &[PathSegment], index: usize) -> Vec<PathSegment> {
    let mut path = path.to_vec();
    path.push(PathSegment::Index(index));
    path
}

/// The candidate closest to `word` (case-insensitive edit distance), if it is close enough to
/// be what the author meant: used for "did you mean" hints.
pub(crate) fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let word = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|candidate| {
            (
                edit_distance(&word, &candidate.to_ascii_lowercase()),
                *candidate,
            )
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// "did you mean X?" for the closest candidate, if any.
pub(crate) fn did_you_mean(word: &str, candidates: &[&str]) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean {c:?}?"))
}

/// Levenshtein distance over chars; inputs are short names, so the quadratic cost is nothing.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        let mut row = current.iter_mut();
        let mut left = i + 1;
        if let Some(first) = row.next() {
            *first = left;
        }
        for ((cell, cb), (diag, up)) in row
            .zip(&b)
            .zip(previous.iter().zip(previous.iter().skip(1)))
        {
            let substitute = diag + usize::from(ca != *cb);
            left = substitute.min(up + 1).min(left + 1);
            *cell = left;
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("stringequal", "stringequals"), 1);
    }

    #[test]
    fn paths_display_as_people_write_them() {
        let path = vec![
            PathSegment::Key("Statement".into()),
            PathSegment::Index(2),
            PathSegment::Key("Condition".into()),
            PathSegment::Key("StringEquals".into()),
        ];
        assert_eq!(
            DisplayPath(&path).to_string(),
            "Statement[2].Condition.StringEquals"
        );
        assert_eq!(DisplayPath(&[]).to_string(), "policy");
    }

    #[test]
    fn closest_finds_near_names_only() {
        let names = ["StringEquals", "StringLike", "NumericEquals"];
        assert_eq!(closest("StringEqual", &names), Some("StringEquals"));
        assert_eq!(closest("stringlike", &names), Some("StringLike"));
        assert_eq!(closest("Frobnicate", &names), None);
    }
}
