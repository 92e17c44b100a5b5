//! The mapping between setting names and environment variables.

/// The environment variable prefix of
/// [`StreamsConfig::from_env`](super::StreamsConfig::from_env).
pub const DEFAULT_ENV_PREFIX: &str = "STREAMS";

pub(super) fn env_prefix(prefix: &str) -> String {
    format!("{}_", prefix.trim_end_matches('_'))
}

/// The environment variable of `setting` under `prefix`: the prefix, `_`, then the name in
/// upper case with each `_` doubled and each `.` turned into `_`.
///
/// The mapping round-trips every setting: [`setting_for_env_var`] reverses it. A `-` or any
/// other character is kept as it is.
///
/// ```
/// use streams_core::config::{env_var_name, setting_for_env_var};
///
/// assert_eq!(env_var_name("STREAMS", "num.stream.threads"), "STREAMS_NUM_STREAM_THREADS");
/// assert_eq!(env_var_name("STREAMS", "consumer.max.poll.records"), "STREAMS_CONSUMER_MAX_POLL_RECORDS");
/// assert_eq!(env_var_name("STREAMS", "producer.some_name"), "STREAMS_PRODUCER_SOME__NAME");
/// assert_eq!(
///     setting_for_env_var("STREAMS", "STREAMS_PRODUCER_SOME__NAME").as_deref(),
///     Some("producer.some_name")
/// );
/// ```
pub fn env_var_name(prefix: &str, setting: &str) -> String {
    let mut out = env_prefix(prefix);
    for c in setting.chars() {
        match c {
            '.' => out.push('_'),
            '_' => out.push_str("__"),
            c => out.extend(c.to_uppercase()),
        }
    }
    out
}

/// The setting named by environment variable `var` under `prefix` (`None` when `var` does
/// not start with `<prefix>_`): the rest of the name in lower case, with `__` read as `_`
/// and a single `_` as `.`. The inverse of [`env_var_name`].
pub fn setting_for_env_var(prefix: &str, var: &str) -> Option<String> {
    let rest = var.strip_prefix(&env_prefix(prefix))?;
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '_' {
            if chars.peek() == Some(&'_') {
                chars.next();
                out.push('_');
            } else {
                out.push('.');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, StreamsConfig, names};

    #[test]
    fn env_names_round_trip_for_every_setting() {
        let all = names::ALL
            .iter()
            .chain(names::ALIASES.iter().map(|(a, _)| a))
            .copied()
            .chain(["consumer.max.poll.records", "producer.odd_name.x"]);
        for name in all {
            let var = env_var_name("STREAMS", name);
            assert!(var.starts_with("STREAMS_"), "{var}");
            assert_eq!(setting_for_env_var("STREAMS_", &var).as_deref(), Some(name));
        }
        assert_eq!(setting_for_env_var("STREAMS", "STREAMSX_A"), None);
    }

    #[test]
    fn env_errors_name_the_variable() {
        let vars = [
            ("STREAMS_APPLICATION_ID".to_string(), "a".to_string()),
            ("STREAMS_NUM_STREAM_THREAD".to_string(), "2".to_string()),
        ];
        let err = StreamsConfig::from_env_vars("STREAMS", vars).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown setting `num.stream.thread` (environment variable STREAMS_NUM_STREAM_THREAD); \
             did you mean `num.stream.threads` (STREAMS_NUM_STREAM_THREADS)?"
        );
        let err = StreamsConfig::from_env_vars("", Vec::new()).unwrap_err();
        assert!(matches!(err, ConfigError::Source { .. }), "{err}");
    }
}
