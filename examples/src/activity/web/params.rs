//! Query parameters and path segments: every one is checked before anything is read or
//! forwarded (the rules are in the module docs of [`web`](super)).

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::error::{ApiError, echo};
use crate::activity::ActivityConfig;

/// The window size of the per-minute aggregations.
pub(super) const MINUTE: i64 = 60_000;
/// The largest `window` the API accepts: the start of the last minute of the year 9999
/// (UTC), in ms since the epoch. Window starts are multiples of a minute from 0 to here.
pub const MAX_WINDOW_START: i64 = 253_402_300_740_000;
/// The largest `n` and `limit` the API accepts.
pub const MAX_RESULTS: usize = 1000;
/// The end of open time ranges (the windows "from an hour ago on"), and the largest
/// `from` and `to` of `/api/local/windows`: far beyond any event time, and far enough
/// from `i64::MAX` that adding a window size cannot overflow.
pub const OPEN_END: i64 = i64::MAX / 2;

/// they know through the checked accessors below and ignore the others.
#[derive(Debug)]
pub(super) struct Params(pub(super) Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Decoding is lossy (bad UTF-8 becomes U+FFFD), so this fails only on a query
        // string `serde_urlencoded` cannot split, if any.
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad query: {e}")))?;
        Ok(Params(pairs))
    }
}

impl Params {
    /// The value of `name`, if given; an error if given more than once.
    fn one(&self, name: &'static str) -> Result<Option<&str>, ApiError> {
        let mut values = self
            .0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::parameter(name, format!("{name} is given twice")));
        }
        Ok(first)
    }

    /// The integer `name` if given, which must be in `[min, max]`; `accepted` describes the
    /// accepted values in the error answer.
    fn int(
        &self,
        name: &'static str,
        min: i64,
        max: i64,
        accepted: &str,
    ) -> Result<Option<i64>, ApiError> {
        let Some(raw) = self.one(name)? else {
            return Ok(None);
        };
        match raw.parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(ApiError::parameter(
                name,
                format!("{name} must be {accepted}, not \"{}\"", echo(raw)),
            )),
        }
    }

    /// `window`: a window start (a multiple of a minute in `[0, MAX_WINDOW_START]`).
    pub(super) fn window(&self) -> Result<Option<i64>, ApiError> {
        let accepted = format!(
            "a window start: a multiple of {MINUTE} (ms since the epoch) between 0 and \
             {MAX_WINDOW_START}"
        );
        let window = self.int("window", 0, MAX_WINDOW_START, &accepted)?;
        match window {
            Some(w) if w % MINUTE != 0 => Err(ApiError::parameter(
                "window",
                format!("window must be {accepted}, not \"{w}\""),
            )),
            _ => Ok(window),
        }
    }

    /// A number of results (`n`, `limit`): in `[1, MAX_RESULTS]`, `default` if not given.
    pub(super) fn count(&self, name: &'static str, default: usize) -> Result<usize, ApiError> {
        let max = i64::try_from(MAX_RESULTS).unwrap_or(i64::MAX);
        let accepted = format!("a whole number between 1 and {MAX_RESULTS}");
        Ok(self
            .int(name, 1, max, &accepted)?
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(default))
    }

    /// `minutes`: at least 1, `default` if not given; more than the retention means the
    /// retention (the stores keep nothing older).
    pub(super) fn minutes(&self, default: i64) -> Result<i64, ApiError> {
        let retention = retention_minutes();
        let accepted = format!(
            "a whole number of minutes, at least 1 (more than {retention}, the retention, \
             means {retention})"
        );
        Ok(self
            .int("minutes", 1, i64::MAX, &accepted)?
            .unwrap_or(default)
            .min(retention))
    }

    /// `from` and `to` of `/api/local/windows`: both required, `0 <= from <= to <=
    /// OPEN_END`.
    pub(super) fn range(&self) -> Result<(i64, i64), ApiError> {
        let accepted = format!("a time in ms between 0 and {OPEN_END}");
        let from = self.int("from", 0, OPEN_END, &accepted)?;
        let to = self.int("to", 0, OPEN_END, &accepted)?;
        match (from, to) {
            (Some(from), Some(to)) if from <= to => Ok((from, to)),
            (Some(from), Some(to)) => Err(ApiError::parameter(
                "to",
                format!("to must not be before from ({to} < {from})"),
            )),
            (None, _) => Err(ApiError::parameter(
                "from",
                format!("from ({accepted}) is required"),
            )),
            (_, None) => Err(ApiError::parameter(
                "to",
                format!("to ({accepted}) is required"),
            )),
        }
    }
}

/// The stores' retention in minutes (the app runs with the default configuration).
fn retention_minutes() -> i64 {
    let secs = ActivityConfig::default().retention.as_secs();
    i64::try_from(secs / 60).unwrap_or(i64::MAX).max(1)
}

/// A path segment (`{page}`, `{user}`): a `400` when it is not UTF-8 once decoded.
pub(super) fn segment(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(s)| s)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))
}
#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn bad_parameter<T: std::fmt::Debug>(r: Result<T, ApiError>) -> &'static str {
        let e = r.expect_err("a bad parameter");
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{e:?}");
        e.parameter.expect("the parameter is named")
    }

    #[test]
    fn window_must_be_a_window_start_in_range() {
        assert_eq!(params(&[]).window().unwrap(), None);
        for ok in ["0", "60000", "1700000040000", "+120000"] {
            assert!(
                params(&[("window", ok)]).window().unwrap().is_some(),
                "{ok}"
            );
        }
        let last = MAX_WINDOW_START.to_string();
        assert_eq!(
            params(&[("window", &last)]).window().unwrap(),
            Some(MAX_WINDOW_START)
        );
        let beyond = (MAX_WINDOW_START + MINUTE).to_string();
        for bad in [
            "9223372036854775807",
            "-9223372036854775808",
            "99999999999999999999",
            "-60000",
            "60001",
            &beyond,
            "",
            "abc",
            "1e6",
            "60000.0",
            " 60000",
        ] {
            assert_eq!(bad_parameter(params(&[("window", bad)]).window()), "window");
        }
        let e = params(&[("window", "9223372036854775807")])
            .window()
            .unwrap_err();
        assert!(e.reason.contains("multiple of 60000"), "{}", e.reason);
        assert!(e.reason.contains(&last), "{}", e.reason);
        let twice = params(&[("window", "0"), ("window", "60000")]);
        assert_eq!(bad_parameter(twice.window()), "window");
        // Unknown parameters are ignored.
        assert_eq!(
            params(&[("x", "y"), ("windows", "z")]).window().unwrap(),
            None
        );
    }

    #[test]
    fn counts_are_between_one_and_the_maximum() {
        assert_eq!(params(&[]).count("n", 10).unwrap(), 10);
        assert_eq!(params(&[("n", "1")]).count("n", 10).unwrap(), 1);
        assert_eq!(
            params(&[("limit", "1000")]).count("limit", 20).unwrap(),
            MAX_RESULTS
        );
        for bad in ["0", "-1", "1001", "18446744073709551616", "ten", ""] {
            assert_eq!(bad_parameter(params(&[("n", bad)]).count("n", 10)), "n");
        }
    }

    #[test]
    fn minutes_are_at_least_one_and_at_most_the_retention() {
        assert_eq!(params(&[]).minutes(15).unwrap(), 15);
        assert_eq!(params(&[("minutes", "60")]).minutes(15).unwrap(), 60);
        for large in ["1441", "100000", "9223372036854775807"] {
            assert_eq!(params(&[("minutes", large)]).minutes(15).unwrap(), 24 * 60);
        }
        for bad in [
            "0",
            "-1",
            "-9223372036854775808",
            "x",
            "9223372036854775808",
        ] {
            assert_eq!(
                bad_parameter(params(&[("minutes", bad)]).minutes(15)),
                "minutes"
            );
        }
    }

    #[test]
    fn local_ranges_are_ordered_and_bounded() {
        let open = OPEN_END.to_string();
        assert_eq!(
            params(&[("from", "0"), ("to", &open)]).range().unwrap(),
            (0, OPEN_END)
        );
        assert_eq!(bad_parameter(params(&[("to", "5")]).range()), "from");
        assert_eq!(bad_parameter(params(&[("from", "5")]).range()), "to");
        assert_eq!(
            bad_parameter(params(&[("from", "6"), ("to", "5")]).range()),
            "to"
        );
        assert_eq!(
            bad_parameter(params(&[("from", "-1"), ("to", "5")]).range()),
            "from"
        );
        assert_eq!(
            bad_parameter(params(&[("from", "0"), ("to", "9223372036854775807")]).range()),
            "to"
        );
    }
}
