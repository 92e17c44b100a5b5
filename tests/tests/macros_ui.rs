//! Tests of the derive macros: `StreamsSerde` and `EventTime` work on well-formed types.
//! Misuse is covered by the compile-fail cases in `tests/macros-ui`.

use std::error::Error;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use streams_core::serde::{DefaultSerde, Serde, SerdeError};
use streams_core::time::EventTime;
use streams_core::{EventTime, StreamsSerde};

/// JSON by default: no `#[streams]` attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StreamsSerde)]
struct PageView {
    user: String,
    page: String,
}

/// JSON, spelled out, on an enum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
enum Command {
    Start { id: u64 },
    Stop,
}

/// Bincode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "bincode")]
struct Reading {
    sensor: String,
    celsius: f64,
}

/// A generic type: the impl bounds `T` by serde's traits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StreamsSerde, EventTime)]
struct Timed<T> {
    value: T,
    #[event_time]
    at: i64,
}

/// Event time in `u64` epoch milliseconds.
#[derive(EventTime)]
struct Unsigned {
    #[event_time]
    ms: u64,
    _name: &'static str,
}

/// Event time as a chrono `DateTime<Utc>`.
#[derive(EventTime)]
struct Click {
    user: String,
    #[event_time]
    when: DateTime<Utc>,
}

/// A tuple struct whose event time is not the first field.
#[derive(EventTime)]
struct Tick(&'static str, #[event_time] i64);

/// The event time's type is a type parameter: the impl requires it to convert.
#[derive(EventTime)]
struct Stamped<Ts> {
    #[event_time]
    ts: Ts,
}

/// Serializes `value` with its default serde, checks that the bytes read back, returns them.
fn round_trip<T: DefaultSerde + PartialEq + std::fmt::Debug>(
    value: &T,
) -> Result<Vec<u8>, SerdeError> {
    let serde = <T as DefaultSerde>::default_serde();
    let bytes = Serde::serialize(&*serde, value)?;
    assert_eq!(&Serde::deserialize(&*serde, &bytes)?, value);
    Ok(bytes)
}

#[test]
fn derives_compile_and_work() -> Result<(), Box<dyn Error>> {
    // StreamsSerde: json by default and when asked for.
    let view = PageView {
        user: "u1".into(),
        page: "/home".into(),
    };
    assert_eq!(round_trip(&view)?, br#"{"user":"u1","page":"/home"}"#);
    assert_eq!(
        round_trip(&Command::Start { id: 7 })?,
        br#"{"Start":{"id":7}}"#
    );
    assert_eq!(round_trip(&Command::Stop)?, br#""Stop""#);

    // StreamsSerde: bincode is compact and not JSON.
    let reading = Reading {
        sensor: "s1".into(),
        celsius: 21.5,
    };
    let bytes = round_trip(&reading)?;
    assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_err());
    assert_eq!(bytes.len(), 1 + 2 + 8);

    // StreamsSerde on a generic type.
    let timed = Timed {
        value: "v".to_string(),
        at: 3,
    };
    assert_eq!(round_trip(&timed)?, br#"{"value":"v","at":3}"#);
    assert_eq!(
        <Timed<u8> as DefaultSerde>::default_serde().deserialize(br#"{"value":9,"at":1}"#)?,
        Timed { value: 9u8, at: 1 }
    );

    // EventTime on each supported field type and struct shape.
    assert_eq!(timed.event_time(), 3);
    assert_eq!(
        Unsigned {
            ms: 1_700_000_000_123,
            _name: "x"
        }
        .event_time(),
        1_700_000_000_123
    );
    assert_eq!(
        Unsigned {
            ms: u64::MAX,
            _name: "x"
        }
        .event_time(),
        i64::MAX
    );
    let when = Utc
        .timestamp_millis_opt(1_600_000_000_456)
        .single()
        .ok_or("timestamp out of range")?;
    let click = Click {
        user: "u".into(),
        when,
    };
    assert_eq!(click.event_time(), 1_600_000_000_456);
    assert_eq!(click.user, "u");
    let tick = Tick("t", 42);
    assert_eq!((tick.0, tick.event_time()), ("t", 42));
    assert_eq!(Stamped { ts: 9i64 }.event_time(), 9);
    assert_eq!(Stamped { ts: when }.event_time(), 1_600_000_000_456);
    Ok(())
}
