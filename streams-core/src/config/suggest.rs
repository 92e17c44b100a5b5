//! "Did you mean": the known setting name closest to an unknown one.

use super::names;

/// The known name closest to `key`, if it is close (a typo, other case, `_` for `.`).
pub(super) fn closest_name(key: &str) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    let candidates = names::ALL
        .iter()
        .chain(names::ALIASES.iter().map(|(alias, _)| alias))
        .chain(names::NOT_SETTABLE.iter());
    let (best, distance) = candidates
        .map(|c| (*c, edit_distance(&lower, c)))
        .min_by_key(|(_, d)| *d)?;
    (distance <= (key.chars().count() / 5).max(2)).then_some(best)
}

/// Levenshtein distance over chars, with `_` and `.` as the same character.
fn edit_distance(a: &str, b: &str) -> usize {
    let norm = |c: char| if c == '_' { '.' } else { c };
    let a: Vec<char> = a.chars().map(norm).collect();
    let b: Vec<char> = b.chars().map(norm).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use crate::config::ConfigError;
    use crate::config::tests::load;

    #[test]
    fn unknown_names_suggest_the_closest() {
        for (typo, expected) in [
            ("num.stream.thread", Some("num.stream.threads")),
            ("APPLICATION.ID", Some("application.id")),
            ("num_stream_threads", Some("num.stream.threads")),
            ("commit.interval", Some("commit.interval.ms")),
            (
                "cache.max.bytes.bufering",
                Some("cache.max.bytes.buffering"),
            ),
            ("linger.ms", None),
        ] {
            let err = load(&[("application.id", "a"), (typo, "1")]).unwrap_err();
            match err {
                ConfigError::Unknown {
                    setting,
                    suggestion,
                    ..
                } => {
                    assert_eq!(setting, typo);
                    assert_eq!(suggestion, expected, "{typo}");
                }
                other => panic!("{typo}: {other}"),
            }
        }
    }
}
