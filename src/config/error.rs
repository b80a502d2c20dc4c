//! What a malformed config produces: one [`Problem`] per bad key, each naming the key, where it came from
//! (the file or a `--set`), and what would be accepted.

use std::fmt;
use std::path::PathBuf;

/// A config that could not be read, parsed or accepted. `Display` gives the full text, one problem per line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {error}", path.display())]
    Read {
        /// The path as given.
        path: PathBuf,
        /// Why it could not be read.
        error: std::io::Error,
    },
    /// The text is not TOML; `message` is toml's, with line, column and a pointer.
    #[error("{source_name} is not valid TOML: {message}")]
    Parse {
        /// The file name, or whatever name the text was given.
        source_name: String,
        /// toml's message.
        message: String,
    },
    /// The TOML is well formed but some keys or values are not accepted.
    #[error("{}", list_problems(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The individual problems (empty for `Read` and `Parse`).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

fn list_problems(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        _ => {
            let lines: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
            format!(
                "{} problems in the config:\n{}",
                problems.len(),
                lines.join("\n")
            )
        }
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A config file (or text given a name), by that name.
    File(String),
    /// A `--set` argument, as given (`train.epochs=3`).
    Set(String),
    /// A `Config` checked by [`Config::validate`](super::Config::validate): no source to name.
    Resolved,
}

impl fmt::Display for Origin {
    /// The phrase that follows the key in a message: ` in FILE`, `` from `--set ARG` ``, or nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(name) => write!(f, " in {name}"),
            Origin::Set(arg) => write!(f, " from `--set {arg}`"),
            Origin::Resolved => Ok(()),
        }
    }
}

/// One rejected key or value.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The full key (`train.epochs`), the section name for section-level problems, or the whole argument for
    /// a malformed `--set`.
    pub key: String,
    /// Where it came from.
    pub origin: Origin,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// What is wrong with a key or value.
#[derive(Debug, Clone, PartialEq)]
pub enum ProblemKind {
    /// A `[section]` that does not exist.
    UnknownSection {
        /// Close section names.
        suggestions: Vec<String>,
        /// Every section name.
        allowed: Vec<&'static str>,
    },
    /// A key that its section does not have.
    UnknownKey {
        /// Close full keys, in this or another section.
        suggestions: Vec<String>,
        /// Every key of the section.
        allowed: Vec<&'static str>,
    },
    /// A plain key written outside any section.
    OutsideSection {
        /// Full keys it probably meant (`train.epochs`).
        suggestions: Vec<String>,
    },
    /// A value of the wrong TOML type.
    WrongType {
        /// The value as TOML.
        value: String,
        /// What the key takes ("an integer ≥ 1").
        expected: String,
        /// The type given ("a string").
        found: &'static str,
    },
    /// A value of the right type outside what the key accepts.
    BadValue {
        /// The value as TOML.
        value: String,
        /// What would be accepted ("must be an integer ≥ 1").
        requirement: String,
    },
    /// A `--set` argument that is not `section.key=value`.
    BadOverride {
        /// Why.
        reason: String,
    },
    /// Anything else (a resolved config that cannot be written as TOML).
    Other(String),
}

/// `` (did you mean `a` or `b`?)``, or nothing.
fn did_you_mean(suggestions: &[String], open: &str, close: &str) -> String {
    if suggestions.is_empty() {
        return String::new();
    }
    let quoted: Vec<String> = suggestions
        .iter()
        .map(|s| format!("`{open}{s}{close}`"))
        .collect();
    format!(" (did you mean {}?)", quoted.join(" or "))
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Problem { key, origin, kind } = self;
        match kind {
            ProblemKind::UnknownSection {
                suggestions,
                allowed,
            } => {
                let sections: Vec<String> = allowed.iter().map(|s| format!("[{s}]")).collect();
                write!(
                    f,
                    "unknown section `[{key}]`{origin}{}; the sections are {}",
                    did_you_mean(suggestions, "[", "]"),
                    sections.join(", ")
                )
            }
            ProblemKind::UnknownKey {
                suggestions,
                allowed,
            } => {
                let section = key.split('.').next().unwrap_or(key);
                write!(
                    f,
                    "unknown key `{key}`{origin}{}; the keys of [{section}] are {}",
                    did_you_mean(suggestions, "", ""),
                    allowed.join(", ")
                )
            }
            ProblemKind::OutsideSection { suggestions } => {
                write!(
                    f,
                    "key `{key}`{origin} is outside any section{}; write it under its [section] header",
                    did_you_mean(suggestions, "", "")
                )
            }
            ProblemKind::WrongType {
                value,
                expected,
                found,
            } => write!(
                f,
                "{key} = {value}{origin}: expected {expected}, found {found}"
            ),
            ProblemKind::BadValue { value, requirement } => {
                write!(f, "{key} = {value}{origin}: {requirement}")
            }
            ProblemKind::BadOverride { reason } => write!(f, "--set `{key}`: {reason}"),
            ProblemKind::Other(detail) => write!(f, "{key}{origin}: {detail}"),
        }
    }
}
