//! Settings of the Kafka clients that pass through under a prefix, and which of them are
//! secrets.

/// The Kafka clients whose own settings pass through under a prefix: `consumer.`,
/// `producer.`, `admin.`, `main.consumer.`, `restore.consumer.`.
///
/// The settings are stored verbatim (without the prefix) and checked by the client that
/// uses them, not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClientPrefix {
    /// `consumer.`: every consumer (main and restore).
    Consumer,
    /// `producer.`: the producers.
    Producer,
    /// `admin.`: the admin client.
    Admin,
    /// `main.consumer.`: the consumer that reads input topics (overrides `consumer.`).
    MainConsumer,
    /// `restore.consumer.`: the consumer that restores state (overrides `consumer.`).
    RestoreConsumer,
}

impl ClientPrefix {
    /// Every prefix.
    pub const ALL: [ClientPrefix; 5] = [
        ClientPrefix::Consumer,
        ClientPrefix::Producer,
        ClientPrefix::Admin,
        ClientPrefix::MainConsumer,
        ClientPrefix::RestoreConsumer,
    ];

    /// The prefix, with its final dot.
    pub fn prefix(self) -> &'static str {
        match self {
            ClientPrefix::Consumer => "consumer.",
            ClientPrefix::Producer => "producer.",
            ClientPrefix::Admin => "admin.",
            ClientPrefix::MainConsumer => "main.consumer.",
            ClientPrefix::RestoreConsumer => "restore.consumer.",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// Whether a client setting's value should not be logged.
pub(super) fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "jaas", "credentials", "token"]
        .iter()
        .any(|w| k.contains(w))
        || k.ends_with("keystore.key")
        || k.ends_with("key.pem")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;
    use crate::config::tests::load;

    #[test]
    fn client_settings_pass_through_verbatim() {
        let c = load(&[
            ("application.id", "a"),
            ("consumer.max.poll.records", "500"),
            ("main.consumer.fetch.min.bytes", "1"),
            ("restore.consumer.max.poll.records", "2000"),
            ("producer.linger.ms", " 5"),
            ("admin.sasl.jaas.config", "secret stuff"),
        ])
        .unwrap();
        for (prefix, key, value) in [
            (ClientPrefix::Consumer, "max.poll.records", "500"),
            (ClientPrefix::MainConsumer, "fetch.min.bytes", "1"),
            (ClientPrefix::RestoreConsumer, "max.poll.records", "2000"),
            (ClientPrefix::Producer, "linger.ms", " 5"),
        ] {
            assert_eq!(c.client_properties(prefix)[key], value, "{prefix:?} {key}");
        }
        let props = c.to_properties();
        assert_eq!(props["admin.sasl.jaas.config"], "[hidden]");
        // Debug output (what logs and error messages print) hides them too.
        let printed = format!("{c:?}");
        assert!(
            printed.contains("[hidden]") && !printed.contains("secret stuff"),
            "{printed}"
        );
        assert_eq!(props["main.consumer.fetch.min.bytes"], "1");
        let err = load(&[("application.id", "a"), ("consumer.", "1")]).unwrap_err();
        assert!(matches!(err, ConfigError::Unknown { .. }), "{err}");
    }
}
