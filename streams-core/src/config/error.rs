//! Configuration errors, and where a wrong setting came from.

use std::fmt;
use std::path::PathBuf;

use super::env::env_var_name;

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// Passed in code
    /// ([`StreamsConfig::from_properties`](super::StreamsConfig::from_properties),
    /// [`PropertySource::from_pairs`](super::PropertySource::from_pairs)).
    Given,
    /// A line of a properties file.
    File {
        /// The file.
        path: PathBuf,
        /// The 1-based line (the first line of a continued line); 0 for the whole file.
        line: usize,
    },
    /// An environment variable.
    Env {
        /// The variable's name.
        var: String,
        /// The prefix it was read under, without the final `_`.
        prefix: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Given => f.write_str("given in code"),
            Origin::File { path, line: 0 } => write!(f, "{}", path.display()),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Env { var, .. } => write!(f, "environment variable {var}"),
        }
    }
}

/// ` (origin)`, or nothing for settings given in code.
fn suffix(origin: &Origin) -> String {
    match origin {
        Origin::Given => String::new(),
        o => format!(" ({o})"),
    }
}

fn unknown_hint(origin: &Origin, suggestion: &Option<&'static str>) -> String {
    match (suggestion, origin) {
        (Some(s), Origin::Env { prefix, .. }) => {
            format!("; did you mean `{s}` ({})?", env_var_name(prefix, s))
        }
        (Some(s), _) => format!("; did you mean `{s}`?"),
        (None, _) => "; Kafka client settings take a prefix: `consumer.`, `producer.`, `admin.`, `main.consumer.` or `restore.consumer.` (settings: docs/CONFIG.md)".into(),
    }
}

/// A configuration error, naming the setting.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting has a value that cannot work.
    #[error("invalid `{setting}`: {detail}")]
    Invalid {
        /// The property name.
        setting: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A required setting is missing.
    #[error("missing setting `{setting}`: it is required and has no default")]
    Missing {
        /// The property name.
        setting: &'static str,
    },
    /// A name that is no setting.
    #[error("unknown setting `{setting}`{}{}", suffix(.origin), unknown_hint(.origin, .suggestion))]
    Unknown {
        /// The name as written.
        setting: String,
        /// Where it came from.
        origin: Box<Origin>,
        /// The closest known name, if one is close.
        suggestion: Option<&'static str>,
    },
    /// A value that does not parse or is out of range.
    #[error("invalid value `{value}` for `{setting}`{}: expected {expected}", suffix(.origin))]
    BadValue {
        /// The name as written.
        setting: String,
        /// The value as written.
        value: String,
        /// What the setting takes.
        expected: String,
        /// Where it came from.
        origin: Box<Origin>,
    },
    /// A Kafka Streams setting that Rust's types decide instead.
    #[error("`{setting}`{} cannot be set: {reason}", suffix(.origin))]
    Unsupported {
        /// The name as written.
        setting: String,
        /// Where it came from.
        origin: Box<Origin>,
        /// Why, and what to do instead.
        reason: String,
    },
    /// Two settings contradict each other (or one appears twice in a source).
    #[error("conflicting settings `{first}`{} and `{second}`{}: {detail}", suffix(.first_origin), suffix(.second_origin))]
    Conflict {
        /// The first setting as written.
        first: String,
        /// Where it came from.
        first_origin: Box<Origin>,
        /// The second setting as written.
        second: String,
        /// Where it came from.
        second_origin: Box<Origin>,
        /// Why they cannot go together.
        detail: String,
    },
    /// A source that cannot be read or parsed (a missing file, a line with no key...).
    #[error("cannot read the configuration{}: {detail}", suffix(.origin))]
    Source {
        /// The file, line or variable.
        origin: Box<Origin>,
        /// What is wrong.
        detail: String,
    },
}
