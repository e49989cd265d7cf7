//! An office acts only as itself: the office a request carries (from the caller's
//! token, set by the gateway) must be the one the domain says acts for the command on
//! this aggregate ([`coord_domain::ActingOffice`]). Checked after loading the
//! aggregate and what the command refers to (an appeal's office is the one of its
//! case's unit, as the referenced case is found here) and before deciding, so a
//! refusal appends nothing.
//!
//! And a site acts only for the offices it hosts ([`Hosting`]): the command service
//! refuses a request for any other office before its handler sees it (the gateway has
//! refused the token already: this is the second line).

use coord_domain::{ActingOffice, Office, References, Sites};
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

/// Which offices this site hosts ([`Sites`]): a request for another office is refused
/// wherever it arrives (gateway, command service, import) before anything is read or
/// appended, naming the site that hosts that office.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosting {
    /// The office that runs this site (`province` for the hub and the single server).
    pub site: Office,
    pub sites: Sites,
}

impl Hosting {
    /// The one site of single-server mode: it hosts every office.
    pub fn everything() -> Self {
        Self {
            site: Office::Province,
            sites: Sites::single(),
        }
    }

    /// `Ok` if this site hosts `office`; else 403 `office_not_hosted_here`.
    pub fn check(&self, office: &Office) -> Result<(), ErrorReply> {
        if self.sites.hosts(&self.site, office) {
            return Ok(());
        }
        Err(ErrorReply::new(
            ErrorKind::Forbidden,
            "office_not_hosted_here",
            format!(
                "this is the site of office {}; office {office} is hosted at the site of \
                 office {}: send it there",
                self.site,
                self.sites.site_of(office)
            ),
        ))
    }

    /// [`Hosting::check`] of an office as a request writes it; one that does not parse
    /// is left to the handler to refuse (`unknown_office`).
    pub fn check_text(&self, office: &str) -> Result<(), ErrorReply> {
        match office.trim().parse::<Office>() {
            Ok(office) => self.check(&office),
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_refuses_an_office_it_does_not_host_naming_the_one_that_does() {
        let lx: Office = "long-xuyen".parse().unwrap();
        let hub = Hosting {
            site: Office::Province,
            sites: Sites::parse("long-xuyen").unwrap(),
        };
        assert!(hub.check(&Office::Province).is_ok());
        assert!(hub.check(&"an-phu".parse().unwrap()).is_ok());
        let refused = hub.check(&lx).unwrap_err();
        assert_eq!(refused.code, "office_not_hosted_here");
        assert_eq!(refused.kind, ErrorKind::Forbidden);
        assert!(
            refused
                .message
                .contains("hosted at the site of office district:long-xuyen"),
            "{}",
            refused.message
        );
        let office = Hosting { site: lx, ..hub };
        assert!(office.check_text("district:long-xuyen").is_ok());
        assert!(office.check_text("province").is_err());
        assert!(Hosting::everything().check(&office.site).is_ok());
    }
}
