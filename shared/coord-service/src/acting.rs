//! An office acts only as itself: the office a request carries (from the caller's
//! token, set by the gateway) must be the one the domain says acts for the command on
//! this aggregate ([`coord_domain::ActingOffice`]). Checked after loading the
//! aggregate and what the command refers to (an appeal's office is the one of its
//! case's unit, as the referenced case is found here) and before deciding, so a
//! refusal appends nothing.

use coord_domain::{ActingOffice, Office, References};
use coord_proto::{ErrorKind, ErrorReply};

/// `Ok` if `office` may send `command` to `state`; `None` from the domain (no office can
/// yet) is left to the domain to refuse.
pub fn check_office<A: ActingOffice>(
    state: &A,
    command: &A::Command,
    references: &References,
    office: &str,
) -> Result<(), ErrorReply> {
    let caller: Office = office
        .parse()
        .map_err(|e| ErrorReply::new(ErrorKind::Forbidden, "unknown_office", format!("{e}")))?;
    match state.acting_office_given(command, references) {
        Some(acting) if acting != caller => Err(ErrorReply::new(
            ErrorKind::Forbidden,
            "acting_for_another_office",
            format!("this command acts for office {acting}; the caller acts for office {caller}"),
        )),
        _ => Ok(()),
    }
}
