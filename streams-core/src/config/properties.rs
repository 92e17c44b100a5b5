//! Sources of settings: pairs given in code, Java properties files (and their lexer), the
//! environment.

use std::path::{Path, PathBuf};

use super::env::{env_prefix, setting_for_env_var};
use super::{ConfigError, Origin};

/// One source of settings: a properties file, the environment, or pairs given in code.
/// Combine several with [`StreamsConfig::from_sources`](super::StreamsConfig::from_sources).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PropertySource {
    pub(super) entries: Vec<(String, String, Origin)>,
}

impl PropertySource {
    /// Settings given in code, as `(name, value)` pairs.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Self {
            entries: pairs
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.as_ref().trim().to_string(),
                        v.as_ref().to_string(),
                        Origin::Given,
                    )
                })
                .collect(),
        }
    }

    /// Reads a Java properties file (UTF-8; see [`parse`](Self::parse)).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Source {
            origin: Box::new(Origin::File {
                path: path.to_path_buf(),
                line: 0,
            }),
            detail: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Parses Java properties text; `path` names it in errors. Lines are `key=value`,
    /// `key: value` or `key value`; keys and values are trimmed; blank lines and lines
    /// starting with `#` or `!` are skipped; a line ending in an odd number of `\`
    /// continues on the next; `\=`, `\:`, `\ `, `\\`, `\t`, `\n`, `\r` and `\uXXXX` are
    /// escapes as in Java.
    pub fn parse(text: &str, path: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        let path = path.into();
        let mut entries = Vec::new();
        let mut lines = text.lines().enumerate();
        while let Some((i, line)) = lines.next() {
            let origin = Origin::File {
                path: path.clone(),
                line: i + 1,
            };
            let mut logical = line.trim_start().to_string();
            if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
                continue;
            }
            while ends_with_continuation(&logical) {
                logical.pop();
                match lines.next() {
                    Some((_, next)) => logical.push_str(next.trim_start()),
                    None => break,
                }
            }
            let (key, value) = split_property(&logical).map_err(|detail| ConfigError::Source {
                origin: Box::new(origin.clone()),
                detail,
            })?;
            if key.is_empty() {
                return Err(ConfigError::Source {
                    origin: Box::new(origin),
                    detail: format!("`{}` has no setting name", logical.trim()),
                });
            }
            entries.push((key, value, origin));
        }
        Ok(Self { entries })
    }

    /// Reads the process environment's variables that start with `<prefix>_` (see
    /// [`from_env_vars`](Self::from_env_vars)).
    pub fn from_env(prefix: &str) -> Result<Self, ConfigError> {
        let mut vars = Vec::new();
        for (k, v) in std::env::vars_os() {
            let name = k.to_string_lossy().into_owned();
            if !name.starts_with(&env_prefix(prefix)) {
                continue;
            }
            match v.into_string() {
                Ok(v) => vars.push((name, v)),
                Err(_) => {
                    return Err(ConfigError::Source {
                        origin: Box::new(Origin::Env {
                            var: name,
                            prefix: prefix.trim_end_matches('_').to_string(),
                        }),
                        detail: "the value is not UTF-8".into(),
                    });
                }
            }
        }
        Self::from_env_vars(prefix, vars)
    }

    /// Takes the variables of `vars` that start with `<prefix>_` (a trailing `_` on
    /// `prefix` is optional) and maps each name to a setting with [`setting_for_env_var`].
    /// An empty prefix is an error: every variable of the environment would be a setting.
    pub fn from_env_vars<I>(prefix: &str, vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let bare = prefix.trim_end_matches('_');
        if bare.is_empty() {
            return Err(ConfigError::Source {
                origin: Box::new(Origin::Given),
                detail: "the environment prefix must not be empty".into(),
            });
        }
        let mut entries: Vec<(String, String, Origin)> = vars
            .into_iter()
            .filter_map(|(var, value)| {
                let key = setting_for_env_var(bare, &var)?;
                Some((
                    key,
                    value,
                    Origin::Env {
                        var,
                        prefix: bare.to_string(),
                    },
                ))
            })
            .collect();
        // The environment has no order; sort so that errors are deterministic.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self { entries })
    }

    /// The settings, as `(name, value, origin)`.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, &Origin)> {
        self.entries
            .iter()
            .map(|(k, v, o)| (k.as_str(), v.as_str(), o))
    }
}

/// Whether a properties line continues on the next: it ends in an odd number of `\`.
fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// Splits a logical properties line into its unescaped, trimmed key and value.
fn split_property(line: &str) -> Result<(String, String), String> {
    let mut key = String::new();
    let mut chars = line.chars().peekable();
    // The key ends at the first unescaped '=', ':' or whitespace.
    let mut separator_seen = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => key.push(unescape(&mut chars)?),
            '=' | ':' => {
                separator_seen = true;
                break;
            }
            c if c.is_whitespace() => break,
            c => key.push(c),
        }
    }
    // Whitespace, then at most one '=' or ':' (if none ended the key), then whitespace.
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
    if !separator_seen && matches!(chars.peek(), Some('=') | Some(':')) {
        chars.next();
    }
    let mut value = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.push(unescape(&mut chars)?),
            c => value.push(c),
        }
    }
    Ok((key.trim().to_string(), value.trim().to_string()))
}

/// The character an escape stands for (the `\` already read).
fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, String> {
    Ok(match chars.next() {
        Some('t') => '\t',
        Some('n') => '\n',
        Some('r') => '\r',
        Some('f') => '\u{c}',
        Some('u') => {
            let hex: String = chars.by_ref().take(4).collect();
            u32::from_str_radix(&hex, 16)
                .ok()
                .filter(|_| hex.len() == 4)
                .and_then(char::from_u32)
                .ok_or_else(|| format!("`\\u{hex}` is not a \\uXXXX escape"))?
        }
        Some(c) => c,
        None => '\\',
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_text_parses_like_java() {
        let text = "# comment\n! also a comment\n\n  application.id = app  \nnum.stream.threads:2\n\
                    state.dir /tmp/a\\ b\nconsumer.client.id=a\\=b\\u0041\nproducer.acks = \\\n    all\n\
                    admin.empty=\n";
        let src = PropertySource::parse(text, "t.properties").unwrap();
        let got: Vec<(&str, &str)> = src.entries().map(|(k, v, _)| (k, v)).collect();
        assert_eq!(
            got,
            [
                ("application.id", "app"),
                ("num.stream.threads", "2"),
                ("state.dir", "/tmp/a b"),
                ("consumer.client.id", "a=bA"),
                ("producer.acks", "all"),
                ("admin.empty", ""),
            ]
        );
        let (_, _, origin) = src.entries().nth(4).unwrap();
        assert_eq!(
            origin,
            &Origin::File {
                path: "t.properties".into(),
                line: 8
            }
        );
        let err = PropertySource::parse("=x\n", "t").unwrap_err();
        assert!(err.to_string().contains("t:1"), "{err}");
        let err = PropertySource::parse("a=\\u12\n", "t").unwrap_err();
        assert!(err.to_string().contains("\\uXXXX"), "{err}");
    }
}
