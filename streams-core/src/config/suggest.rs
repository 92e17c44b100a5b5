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

/// Levenshtein distance over chars (`strsim`), with `_` and `.` as the same character.
fn edit_distance(a: &str, b: &str) -> usize {
    strsim::levenshtein(&a.replace('_', "."), &b.replace('_', "."))
}

#[cfg(test)]
mod tests {
    use super::{closest_name, edit_distance};
    use crate::config::ConfigError;
    use crate::config::tests::load;

    #[test]
    fn distance_counts_char_edits_and_treats_underscore_as_dot() {
        // Each pair: one substitution, insertion or deletion per counted edit, by hand.
        for (a, b, expected) in [
            ("", "", 0),
            ("", "abc", 3),
            ("kitten", "sitting", 3),
            ("num_stream_threads", "num.stream.threads", 0),
            ("num.stream.thread", "num.stream.threads", 1),
            // Chars, not bytes: ö→o, ß→s and one inserted s.
            ("größe", "grosse", 3),
        ] {
            assert_eq!(edit_distance(a, b), expected, "{a} / {b}");
            assert_eq!(edit_distance(b, a), expected, "{b} / {a}");
        }
    }

    #[test]
    fn suggestions_stop_at_the_threshold() {
        // `num.stream.threads` has 18 chars: up to max(18 / 5, 2) = 3 edits are a typo.
        assert_eq!(
            closest_name("nxm.sxream.thrxads"),
            Some("num.stream.threads")
        );
        assert_eq!(closest_name("nxm.sxream.thrxadx"), None);
        // Short names still allow two edits (`stat.dix`: 8 chars, 8 / 5 = 1).
        assert_eq!(closest_name("stat.dix"), Some("state.dir"));
        assert_eq!(closest_name("sat.dix"), None);
    }

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
