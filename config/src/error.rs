//! Problems found in a config file, each with where it is and how to fix it.

use std::fmt;

use crate::yaml::Pos;

/// One problem: where it is (path and line:column), what is wrong, and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where in the document, e.g. `services[0].listeners[1].rules[2].priority`.
    pub path: String,
    pub pos: Pos,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(top level)"
        } else {
            &self.path
        };
        write!(
            f,
            "{}:{}: {}: {}",
            self.pos.line, self.pos.col, path, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n    hint: {hint}")?;
        }
        Ok(())
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(file, problems))]
    Invalid {
        file: String,
        problems: Vec<Diagnostic>,
    },
}

impl ConfigError {
    /// The individual problems (empty for a read error).
    pub fn problems(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            ConfigError::Read { .. } => &[],
        }
    }
}

fn render(file: &str, problems: &[Diagnostic]) -> String {
    let mut out = String::new();
    for problem in problems {
        out.push_str(&format!("{file}:{problem}\n"));
    }
    let n = problems.len();
    out.push_str(&format!(
        "{file}: {n} problem{} found",
        if n == 1 { "" } else { "s" }
    ));
    out
}
