//! How ids are derived from other ids: the one place that knows it.
//!
//! Retries must converge: a client that sends the same request again, with the same
//! `Idempotency-Key`, must address the same command, the same new aggregate and produce
//! the same event ids, so that every layer (the command handler's history check,
//! JetStream's `Nats-Msg-Id` window, the log's lookup after a conflict) recognises it.
//! Every derivation here is a UUID v5 (RFC 9562 §5.5: SHA-1 over a namespace and a
//! name), chosen over v8 because v5 is the standard name-based layout that any UUID
//! library reproduces from the namespace and the name, and over v7 because a retry must
//! give the same id, not a new time-ordered one. Each derivation has its own namespace,
//! so ids of different kinds never collide.

use uuid::Uuid;

/// Namespace of command ids derived from free-form idempotency keys.
const KEY_NAMESPACE: Uuid = Uuid::from_u128(0x8c3e_51d2_6a4f_4b7e_9d10_c0a1_7f3e_2b55);
/// Namespace of the ids of aggregates created without a client-chosen id. (It is the
/// same value the gateway has always used, so aggregates created before keep theirs.)
const AGGREGATE_NAMESPACE: Uuid = KEY_NAMESPACE;
/// Namespace of receipt ids (one receipt per exchange).
const RECEIPT_NAMESPACE: Uuid = Uuid::from_u128(0x2d7a_c4e9_81b3_4f06_a5d2_6e1f_93b8_0c47);
/// Namespace of event ids.
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x4f1b_9a77_03c2_4d5e_8e61_2b90_d4a3_c718);

/// The command id an `Idempotency-Key` names, for `office`.
///
/// A key that is a UUID is the command id itself (clients that mint UUIDs, such as
/// `coordctl load`, keep their ids; UUIDs are unique without a scope). Any other key is
/// scoped by the office: two offices that both choose `plan-2025` send two different
/// commands. Within one office a key names one request, across every aggregate and
/// route (the command services refuse a reused key with `idempotency_key_reused`).
pub fn command_id_from_key(office: &str, key: &str) -> Uuid {
    Uuid::try_parse(key).unwrap_or_else(|_| {
        let name = [office.as_bytes(), b"\n", key.as_bytes()].concat();
        Uuid::new_v5(&KEY_NAMESPACE, &name)
    })
}

/// The id of a new aggregate whose creating command did not choose one: a retry of the
/// command addresses the same aggregate.
pub fn new_aggregate_id(command_id: Uuid) -> Uuid {
    Uuid::new_v5(&AGGREGATE_NAMESPACE, command_id.as_bytes())
}

/// The id of the receipt (`coord_domain::receipt::Receipt`) of exchange `exchange_id`:
/// one per exchange, whoever acknowledges and under whatever key, so a second
/// acknowledgement meets the stream the first one wrote.
pub fn receipt_id(exchange_id: Uuid) -> Uuid {
    Uuid::new_v5(&RECEIPT_NAMESPACE, exchange_id.as_bytes())
}

/// The id of the appeal (`coord_domain::appeal::Appeal`) against case `case_id`: one
/// per case. Derived in the domain, which a case's resolution needs it in, and named
/// here with the other derivations.
pub use coord_domain::appeal::appeal_id;

/// The id of the `index`-th event (0-based) that command `command_id` appends to
/// office `office`'s `stream`. A retried append carries the same ids, so JetStream
/// drops a retried publish by `Nats-Msg-Id` and a lookup by event id finds the
/// original. The office and the stream are part of the name so that one command id can
/// never produce the same event id on two streams, nor at two offices (the same command
/// sent to two sites gives two `Nats-Msg-Id`s in the hub's stream), even from a client
/// that bypasses the key check.
pub fn event_id(command_id: Uuid, office: &str, stream: &str, index: usize) -> Uuid {
    let index = u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes();
    let name = [
        command_id.as_bytes().as_slice(),
        office.as_bytes(),
        b"/",
        stream.as_bytes(),
        b"\n",
        &index,
    ]
    .concat();
    Uuid::new_v5(&EVENT_NAMESPACE, &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "inspection-0190a000-0000-7000-8000-000000000001";

    #[test]
    fn event_ids_repeat_for_a_retry_and_differ_otherwise() {
        let command = Uuid::now_v7();
        let id = |command, office, stream, index| event_id(command, office, stream, index);
        let first = id(command, "province", STREAM, 0);
        assert_eq!(first, id(command, "province", STREAM, 0));
        assert_ne!(first, id(command, "province", STREAM, 1));
        assert_ne!(first, id(Uuid::now_v7(), "province", STREAM, 0));
        assert_ne!(
            first,
            id(
                command,
                "province",
                "exchange-0190a000-0000-7000-8000-000000000001",
                0
            )
        );
        // The same command at two offices: two ids, so the hub keeps both.
        assert_ne!(first, id(command, "district:long-xuyen", STREAM, 0));
        assert_eq!(first.get_version_num(), 5);
    }

    #[test]
    fn free_form_keys_are_scoped_by_office_and_uuid_keys_are_the_id() {
        let a = command_id_from_key("province", "plan-2025");
        assert_eq!(a, command_id_from_key("province", "plan-2025"));
        assert_ne!(a, command_id_from_key("district:an-phu", "plan-2025"));
        let uuid = Uuid::now_v7();
        assert_eq!(command_id_from_key("province", &uuid.to_string()), uuid);
        assert_eq!(
            command_id_from_key("district:an-phu", &uuid.to_string()),
            uuid
        );
    }

    #[test]
    fn one_receipt_per_exchange() {
        let exchange = Uuid::now_v7();
        assert_eq!(receipt_id(exchange), receipt_id(exchange));
        assert_ne!(receipt_id(exchange), receipt_id(Uuid::now_v7()));
        assert_ne!(receipt_id(exchange), exchange);
        assert_ne!(receipt_id(exchange), new_aggregate_id(exchange));
        assert_eq!(receipt_id(exchange).get_version_num(), 5);
    }

    #[test]
    fn one_appeal_per_case() {
        let case = Uuid::now_v7();
        assert_eq!(appeal_id(case), appeal_id(case));
        assert_ne!(appeal_id(case), appeal_id(Uuid::now_v7()));
        assert_ne!(appeal_id(case), case);
        assert_ne!(appeal_id(case), receipt_id(case));
        assert_ne!(appeal_id(case), new_aggregate_id(case));
        assert_eq!(appeal_id(case).get_version_num(), 5);
    }

    #[test]
    fn a_new_aggregate_id_follows_the_command() {
        let c = Uuid::now_v7();
        assert_eq!(new_aggregate_id(c), new_aggregate_id(c));
        assert_ne!(new_aggregate_id(c), new_aggregate_id(Uuid::now_v7()));
    }
}
