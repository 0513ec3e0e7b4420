//! The SQL pillar's errors, and their HTTP status and error code in one place
//! ([`SqlError::status`], [`SqlError::code`]), as ksqlDB's error bodies carry them.

/// What went wrong with a statement or a job.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum SqlError {
    /// The text does not parse: line and column (1-based) of the offending token.
    #[error("syntax error at line {line}, column {column}: {message}")]
    Syntax {
        /// What was expected and what was found.
        message: String,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: u64,
    },
    /// A table, view or job that does not exist.
    #[error("{kind} {name} does not exist")]
    NotFound {
        /// `table`, `view`, `job`, ...
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A table or view that exists already.
    #[error("{kind} {name} already exists")]
    Exists {
        /// `table` or `view`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A column that no input has.
    #[error("column {name} not found{}", candidates_text(.candidates))]
    UnknownColumn {
        /// The name as written.
        name: String,
        /// The columns in scope.
        candidates: Vec<String>,
    },
    /// An expression whose types do not fit.
    #[error("type error: {0}")]
    Type(String),
    /// Valid Flink SQL that Spate does not run (yet), by name.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A table's options or a statement's properties are wrong.
    #[error("invalid option: {0}")]
    Option(String),
    /// A value could not be computed (a failed CAST, a division by zero).
    #[error("runtime error: {0}")]
    Runtime(String),
    /// The cluster or the schema registry could not be reached or refused.
    #[error("{0}")]
    Io(String),
    /// A job's task was fenced: another worker owns it now.
    #[error("fenced: {0}")]
    Fenced(String),
}

fn candidates_text(candidates: &[String]) -> String {
    if candidates.is_empty() {
        String::new()
    } else {
        format!(" (columns: {})", candidates.join(", "))
    }
}

impl SqlError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            SqlError::Syntax { .. }
            | SqlError::UnknownColumn { .. }
            | SqlError::Type(_)
            | SqlError::Unsupported(_)
            | SqlError::Option(_)
            | SqlError::Runtime(_) => 400,
            SqlError::NotFound { .. } => 404,
            SqlError::Exists { .. } => 409,
            SqlError::Io(_) | SqlError::Fenced(_) => 503,
        }
    }

    /// The error code in the body (ksqlDB's style: the status followed by two digits).
    pub fn code(&self) -> u32 {
        let detail = match self {
            SqlError::Syntax { .. } => 1,
            SqlError::UnknownColumn { .. } => 2,
            SqlError::Type(_) => 3,
            SqlError::Unsupported(_) => 4,
            SqlError::Option(_) => 5,
            SqlError::Runtime(_) => 6,
            SqlError::NotFound { .. } | SqlError::Exists { .. } | SqlError::Io(_) => 0,
            SqlError::Fenced(_) => 1,
        };
        u32::from(self.status()) * 100 + detail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_status_and_code() {
        let all = [
            SqlError::Syntax {
                message: "x".into(),
                line: 1,
                column: 2,
            },
            SqlError::NotFound {
                kind: "table",
                name: "t".into(),
            },
            SqlError::Exists {
                kind: "table",
                name: "t".into(),
            },
            SqlError::UnknownColumn {
                name: "c".into(),
                candidates: vec!["a".into()],
            },
            SqlError::Type("t".into()),
            SqlError::Unsupported("u".into()),
            SqlError::Option("o".into()),
            SqlError::Runtime("r".into()),
            SqlError::Io("i".into()),
            SqlError::Fenced("f".into()),
        ];
        for e in all {
            assert_eq!(e.code() / 100, u32::from(e.status()), "{e}");
        }
    }
}
