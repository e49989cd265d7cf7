//! Given / when / then helpers for the aggregates' unit tests.

use std::sync::LazyLock;

use crate::{Aggregate, Context, Date, Province, province::AN_GIANG_TOML};

pub(crate) static AN_GIANG: LazyLock<Province> =
    LazyLock::new(|| Province::from_toml_str(AN_GIANG_TOML).unwrap());

pub(crate) fn d(s: &str) -> Date {
    s.parse().expect("test dates are ISO dates")
}

/// Runs `command` against the state built from `history`.
pub(crate) fn given_when<A: Aggregate>(
    history: &[A::Event],
    command: A::Command,
) -> Result<Vec<A::Event>, A::Rejection> {
    let state = A::from_history(history);
    state.handle(
        &command,
        &Context {
            province: &AN_GIANG,
        },
    )
}

/// Every event type survives the wire: encode, then decode gives the same event.
pub(crate) fn assert_round_trips<A: Aggregate>(events: &[A::Event])
where
    A::Event: PartialEq,
{
    use crate::DomainEvent;
    for event in events {
        let (ty, payload) = event.encode();
        let back = A::Event::decode(ty, A::Event::SCHEMA_VERSION, payload).unwrap();
        assert_eq!(&back, event);
    }
}
