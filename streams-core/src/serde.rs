//! Serdes: how keys and values become bytes and back.
//!
//! A [`Serde<T>`] serializes a `T` to bytes and deserializes it with a typed [`SerdeError`].
//! Serdes are only used at the edges of a sub-topology (sources, sinks, repartition topics)
//! and by state stores; operators inside a sub-topology pass typed values to each other.
//!
//! Built-ins follow Kafka's byte layouts, so data written by other Kafka clients reads back:
//! strings are UTF-8, integers and floats are big-endian, `()` is Kafka's `Void` (null).
//! [`JsonSerde`] and [`BincodeSerde`] cover structured values. A type's default serde comes
//! from [`DefaultSerde`], implemented for the built-in types and by `#[derive(StreamsSerde)]`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use thiserror::Error;

/// Why a value could not be serialized or deserialized.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SerdeError {
    /// The bytes are null (Kafka null) but the type has no null value; use `Option<T>`.
    #[error("unexpected null for `{type_name}` (use Option<{type_name}> to accept nulls)")]
    UnexpectedNull {
        /// The target type.
        type_name: &'static str,
    },
    /// The bytes have the wrong length for a fixed-size type.
    #[error("`{type_name}` needs {expected} bytes, got {actual}")]
    WrongSize {
        /// The target type.
        type_name: &'static str,
        /// Bytes expected.
        expected: usize,
        /// Bytes received.
        actual: usize,
    },
    /// The bytes do not decode in the serde's format.
    #[error("invalid {format} for `{type_name}`: {detail}")]
    Invalid {
        /// The format (utf-8, json, bincode, ...).
        format: &'static str,
        /// The target type.
        type_name: &'static str,
        /// The decoder's message.
        detail: String,
    },
    /// The value cannot be encoded in the serde's format.
    #[error("cannot encode `{type_name}` as {format}: {detail}")]
    Encode {
        /// The format.
        format: &'static str,
        /// The source type.
        type_name: &'static str,
        /// The encoder's message.
        detail: String,
    },
}

/// Serializes `T` to bytes and back.
///
/// Implement [`serialize_into`](Serde::serialize_into) and [`deserialize`](Serde::deserialize);
/// override the `_nullable` methods only for types that have a null representation (Kafka's
/// null key or value), as [`OptionSerde`] does.
///
/// ```
/// use streams_core::serde::{Serde, I64Serde};
/// let bytes = I64Serde.serialize(&42).unwrap();
/// assert_eq!(bytes, 42i64.to_be_bytes());
/// assert_eq!(I64Serde.deserialize(&bytes).unwrap(), 42);
/// ```
pub trait Serde<T>: Send + Sync + 'static {
    /// Appends the bytes of `value` to `out`.
    fn serialize_into(&self, value: &T, out: &mut Vec<u8>) -> Result<(), SerdeError>;

    /// Decodes a value from `bytes`.
    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError>;

    /// The bytes of `value` in a new buffer.
    fn serialize(&self, value: &T) -> Result<Vec<u8>, SerdeError> {
        let mut out = Vec::new();
        self.serialize_into(value, &mut out)?;
        Ok(out)
    }

    /// The bytes of `value`, or `None` for Kafka's null. Only null-able types return `None`.
    fn serialize_nullable(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        self.serialize(value).map(Some)
    }

    /// Whether `value` is Kafka's null (`None` of an `Option`, or `()`). Aggregations and
    /// stores drop or refuse null keys.
    fn is_null(&self, _value: &T) -> bool {
        false
    }

    /// Decodes possibly-null bytes. The default refuses null with
    /// [`SerdeError::UnexpectedNull`].
    fn deserialize_nullable(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        match bytes {
            Some(b) => self.deserialize(b),
            None => Err(SerdeError::UnexpectedNull {
                type_name: std::any::type_name::<T>(),
            }),
        }
    }
}

/// A shared serde for `T`.
pub type SerdeRef<T> = Arc<dyn Serde<T>>;

/// Types with a default serde, so that the DSL needs no explicit serde for them.
///
/// Implemented for `String`, `Vec<u8>`, `i32`, `i64`, `u64`, `f64`, `()`, `Option<T>`, and by
/// `#[derive(StreamsSerde)]` for user types.
pub trait DefaultSerde: Sized + 'static {
    /// The serde used when none is given.
    fn default_serde() -> SerdeRef<Self>;
}

/// UTF-8 strings.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerde;

impl Serde<String> for StringSerde {
    fn serialize_into(&self, value: &String, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.extend_from_slice(value.as_bytes());
        Ok(())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<String, SerdeError> {
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| SerdeError::Invalid {
                format: "utf-8",
                type_name: "String",
                detail: e.to_string(),
            })
    }
}

/// Raw bytes, unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerde;

impl Serde<Vec<u8>> for BytesSerde {
    fn serialize_into(&self, value: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.extend_from_slice(value);
        Ok(())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Vec<u8>, SerdeError> {
        Ok(bytes.to_vec())
    }
}

macro_rules! fixed_width_serde {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $n:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        impl Serde<$ty> for $name {
            fn serialize_into(&self, value: &$ty, out: &mut Vec<u8>) -> Result<(), SerdeError> {
                out.extend_from_slice(&value.to_be_bytes());
                Ok(())
            }
            fn deserialize(&self, bytes: &[u8]) -> Result<$ty, SerdeError> {
                let arr: [u8; $n] = bytes.try_into().map_err(|_| SerdeError::WrongSize {
                    type_name: stringify!($ty),
                    expected: $n,
                    actual: bytes.len(),
                })?;
                Ok(<$ty>::from_be_bytes(arr))
            }
        }

        impl DefaultSerde for $ty {
            fn default_serde() -> SerdeRef<Self> {
                Arc::new($name)
            }
        }
    };
}

fixed_width_serde!(
    /// 32-bit signed integers, big-endian (Kafka's `IntegerSerde`).
    I32Serde, i32, 4
);
fixed_width_serde!(
    /// 64-bit signed integers, big-endian (Kafka's `LongSerde`).
    I64Serde, i64, 8
);
fixed_width_serde!(
    /// 64-bit unsigned integers, big-endian.
    U64Serde, u64, 8
);
fixed_width_serde!(
    /// 64-bit floats, big-endian IEEE 754 (Kafka's `DoubleSerde`).
    F64Serde, f64, 8
);

/// The unit type as Kafka's `Void`: always null on the wire.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitSerde;

impl Serde<()> for UnitSerde {
    fn serialize_into(&self, _value: &(), _out: &mut Vec<u8>) -> Result<(), SerdeError> {
        Ok(())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<(), SerdeError> {
        if bytes.is_empty() {
            Ok(())
        } else {
            Err(SerdeError::WrongSize {
                type_name: "()",
                expected: 0,
                actual: bytes.len(),
            })
        }
    }
    fn serialize_nullable(&self, _value: &()) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(None)
    }
    fn is_null(&self, _value: &()) -> bool {
        true
    }
    fn deserialize_nullable(&self, bytes: Option<&[u8]>) -> Result<(), SerdeError> {
        bytes.map_or(Ok(()), |b| self.deserialize(b))
    }
}

/// `Option<T>` with `None` as Kafka's null (a tombstone when it is a value).
pub struct OptionSerde<T> {
    inner: SerdeRef<T>,
}

impl<T> OptionSerde<T> {
    /// Wraps the serde of `T`.
    pub fn new(inner: SerdeRef<T>) -> Self {
        Self { inner }
    }
}

impl<T> fmt::Debug for OptionSerde<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OptionSerde")
    }
}

impl<T: 'static> Serde<Option<T>> for OptionSerde<T> {
    fn serialize_into(&self, value: &Option<T>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        match value {
            Some(v) => self.inner.serialize_into(v, out),
            None => Ok(()),
        }
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Option<T>, SerdeError> {
        self.inner.deserialize(bytes).map(Some)
    }
    fn serialize_nullable(&self, value: &Option<T>) -> Result<Option<Vec<u8>>, SerdeError> {
        value.as_ref().map(|v| self.inner.serialize(v)).transpose()
    }
    fn is_null(&self, value: &Option<T>) -> bool {
        value.is_none()
    }
    fn deserialize_nullable(&self, bytes: Option<&[u8]>) -> Result<Option<T>, SerdeError> {
        bytes.map(|b| self.inner.deserialize(b)).transpose()
    }
}

/// JSON via `serde_json`, for any `T: Serialize + DeserializeOwned`.
pub struct JsonSerde<T>(PhantomData<fn() -> T>);

impl<T> JsonSerde<T> {
    /// A JSON serde for `T`.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T> Default for JsonSerde<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for JsonSerde<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonSerde<{}>", std::any::type_name::<T>())
    }
}

impl<T> Serde<T> for JsonSerde<T>
where
    T: ::serde::Serialize + ::serde::de::DeserializeOwned + 'static,
{
    fn serialize_into(&self, value: &T, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        serde_json::to_writer(out, value).map_err(|e| SerdeError::Encode {
            format: "json",
            type_name: std::any::type_name::<T>(),
            detail: e.to_string(),
        })
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError> {
        serde_json::from_slice(bytes).map_err(|e| SerdeError::Invalid {
            format: "json",
            type_name: std::any::type_name::<T>(),
            detail: e.to_string(),
        })
    }
}

/// Compact binary via bincode 2 (serde mode, standard configuration: little-endian varints).
pub struct BincodeSerde<T>(PhantomData<fn() -> T>);

impl<T> BincodeSerde<T> {
    /// A bincode serde for `T`.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T> Default for BincodeSerde<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for BincodeSerde<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BincodeSerde<{}>", std::any::type_name::<T>())
    }
}

impl<T> Serde<T> for BincodeSerde<T>
where
    T: ::serde::Serialize + ::serde::de::DeserializeOwned + 'static,
{
    fn serialize_into(&self, value: &T, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
            .map(|_| ())
            .map_err(|e| SerdeError::Encode {
                format: "bincode",
                type_name: std::any::type_name::<T>(),
                detail: e.to_string(),
            })
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError> {
        let (value, read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map_err(|e| SerdeError::Invalid {
            format: "bincode",
            type_name: std::any::type_name::<T>(),
            detail: e.to_string(),
        })?;
        if read != bytes.len() {
            return Err(SerdeError::Invalid {
                format: "bincode",
                type_name: std::any::type_name::<T>(),
                detail: format!("{} trailing bytes", bytes.len() - read),
            });
        }
        Ok(value)
    }
}

impl DefaultSerde for String {
    fn default_serde() -> SerdeRef<Self> {
        Arc::new(StringSerde)
    }
}

impl DefaultSerde for Vec<u8> {
    fn default_serde() -> SerdeRef<Self> {
        Arc::new(BytesSerde)
    }
}

impl DefaultSerde for () {
    fn default_serde() -> SerdeRef<Self> {
        Arc::new(UnitSerde)
    }
}

impl<T: DefaultSerde> DefaultSerde for Option<T> {
    fn default_serde() -> SerdeRef<Self> {
        Arc::new(OptionSerde::new(T::default_serde()))
    }
}

/// The default serde of `T`, as a shared reference.
pub fn default_serde<T: DefaultSerde>() -> SerdeRef<T> {
    T::default_serde()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
    struct View {
        user: String,
        ts: i64,
    }

    #[test]
    fn primitives_use_kafkas_big_endian_layout() {
        assert_eq!(I32Serde.serialize(&1).unwrap(), vec![0, 0, 0, 1]);
        assert_eq!(I64Serde.serialize(&-1).unwrap(), vec![0xff; 8]);
        assert_eq!(
            F64Serde.serialize(&1.5).unwrap(),
            1.5f64.to_bits().to_be_bytes()
        );
        assert_eq!(
            U64Serde.deserialize(&[0, 0, 0, 0, 0, 0, 1, 0]).unwrap(),
            256
        );
        assert!(matches!(
            I64Serde.deserialize(&[1, 2, 3]),
            Err(SerdeError::WrongSize {
                expected: 8,
                actual: 3,
                ..
            })
        ));
    }

    #[test]
    fn strings_reject_invalid_utf8() {
        assert_eq!(StringSerde.deserialize(b"hi").unwrap(), "hi");
        assert!(matches!(
            StringSerde.deserialize(&[0xff, 0xfe]),
            Err(SerdeError::Invalid {
                format: "utf-8",
                ..
            })
        ));
    }

    #[test]
    fn nulls_need_option_or_unit() {
        assert!(matches!(
            StringSerde.deserialize_nullable(None),
            Err(SerdeError::UnexpectedNull { .. })
        ));
        let opt = <Option<String>>::default_serde();
        assert_eq!(opt.deserialize_nullable(None).unwrap(), None);
        assert_eq!(opt.serialize_nullable(&None).unwrap(), None);
        assert_eq!(
            opt.serialize_nullable(&Some("a".into())).unwrap(),
            Some(b"a".to_vec())
        );
        assert_eq!(UnitSerde.serialize_nullable(&()).unwrap(), None);
        UnitSerde.deserialize_nullable(None).unwrap();
    }

    #[test]
    fn json_and_bincode_round_trip_and_report_garbage() {
        let v = View {
            user: "u1".into(),
            ts: 7,
        };
        let json = JsonSerde::<View>::new();
        let bytes = json.serialize(&v).unwrap();
        assert_eq!(bytes, br#"{"user":"u1","ts":7}"#);
        assert_eq!(json.deserialize(&bytes).unwrap(), v);
        assert!(matches!(
            json.deserialize(b"{"),
            Err(SerdeError::Invalid { format: "json", .. })
        ));
        let bin = BincodeSerde::<View>::new();
        let bytes = bin.serialize(&v).unwrap();
        assert!(bytes.len() < 8);
        assert_eq!(bin.deserialize(&bytes).unwrap(), v);
        assert!(bin.deserialize(&[0xff]).is_err());
    }
}
