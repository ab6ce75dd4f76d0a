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
    /// `LINE:COL: PATH: MESSAGE`, or `PATH: MESSAGE` for an object of the API store (which
    /// has no line in the file).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(top level)"
        } else {
            &self.path
        };
        if self.pos.in_store() {
            write!(f, "{}: {}", path, self.message)?;
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.pos.line, self.pos.col, path, self.message
            )?;
        }
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
    #[error("{}", render(file, store.as_deref(), problems))]
    Invalid {
        file: String,
        /// The API store layered on the file, when there is one: its problems are the ones at
        /// [`crate::Pos::STORE`].
        store: Option<String>,
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

fn render(file: &str, store: Option<&str>, problems: &[Diagnostic]) -> String {
    let mut out = String::new();
    for problem in problems {
        match store.filter(|_| problem.pos.in_store()) {
            Some(store) => out.push_str(&format!("{store}: {problem}\n")),
            None => out.push_str(&format!("{file}:{problem}\n")),
        }
    }
    let n = problems.len();
    out.push_str(&format!(
        "{file}: {n} problem{} found",
        if n == 1 { "" } else { "s" }
    ));
    out
}
