//! Bearer tokens on the operator's side: `coordctl token create`, the tokens the
//! launcher writes for every office it runs (`<data-dir>/credentials/<office>.token`,
//! owner-only) and for the admin of every site it starts
//! (`<data-dir>/credentials/<office>.admin.token`), and which token a request uses:
//! `--token`, else the file of the command's office (one that names none: the `--site`
//! office's), else the province's; an operation
//! that changes a site (rebuild, redrive, import) uses `--token`, else the admin token
//! of the site (`--site`). Every token made here expires: a person's after
//! `--valid-for` (default 12 h), the launcher's after 30 days, and the launcher writes
//! a new one on a start that finds its token expired or signed by another key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use coord_auth::secret;
use coord_auth::{Role, TokenSigner};
use coord_domain::{Office, Province};

/// The signing key's file in a credentials folder.
pub const SIGNING_KEY_FILE: &str = "token-signing.nk";

/// How long the launcher's office tokens are valid.
pub const OFFICE_TOKEN_VALIDITY: std::time::Duration =
    std::time::Duration::from_secs(30 * 24 * 3600);

/// `coordctl token …`.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Make a token binding an office, an actor and a role; prints it.
    Create {
        /// `province`, `district:<unit>` or `<unit>`.
        #[arg(long)]
        office: String,
        /// Who acts, recorded on every event (e.g. "văn thư tiếp nhận").
        #[arg(long)]
        actor: String,
        /// `operator` (sends commands for its office), `reader` (queries only) or
        /// `admin` (rebuild, redrive, import at the site its office runs).
        #[arg(long, default_value = "operator")]
        role: Role,
        /// How long it is valid, e.g. `8h`, `30d`, `90min`.
        #[arg(long, default_value = "12h", value_parser = humantime::parse_duration)]
        valid_for: std::time::Duration,
        /// Also write it to this file (owner-only).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the public key gateways verify tokens with (`COORD_TOKEN_PUBLIC_KEY`).
    PublicKey,
}

/// The signing key in `dir` if there is one: never made here (a new key would refuse
/// every token the old one signed).
pub fn existing_signer(dir: &Path) -> anyhow::Result<TokenSigner> {
    let path = dir.join(SIGNING_KEY_FILE);
    let exists = path.try_exists().with_context(|| {
        format!(
            "cannot look for the token signing key at {}",
            path.display()
        )
    })?;
    anyhow::ensure!(
        exists,
        "no token signing key at {}: give --credentials the folder of the key your tokens \
         are signed with (`coordctl deploy secrets` and `coordctl up` keep it there), or \
         make one with `coordctl --credentials <folder> token public-key`",
        path.display()
    );
    signer(dir)
}

/// The signing key in `dir`, generated on first use.
pub fn signer(dir: &Path) -> anyhow::Result<TokenSigner> {
    let seed = secret::read_or_create(&dir.join(SIGNING_KEY_FILE), || {
        TokenSigner::generate().seed()
    })
    .with_context(|| format!("cannot read or create the signing key in {}", dir.display()))?;
    Ok(TokenSigner::from_seed(&seed)?)
}

/// An office of `province`, or an error naming the known ones.
pub fn office_of(province: &Province, text: &str) -> anyhow::Result<Office> {
    let office: Office = text.parse()?;
    if let Office::District(unit) = &office {
        anyhow::ensure!(
            province.unit(unit).is_some(),
            "unknown unit `{unit}`; known: {}",
            province
                .units
                .iter()
                .map(|u| u.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(office)
}

/// Runs `coordctl token …` with the key in `credentials`.
pub fn run(command: TokenCommand, credentials: &Path) -> anyhow::Result<String> {
    let signer = signer(credentials)?;
    match command {
        TokenCommand::Create {
            office,
            actor,
            role,
            valid_for,
            out,
        } => {
            let province = Province::from_toml_str(coord_domain::province::AN_GIANG_TOML)?;
            let office = office_of(&province, &office)?;
            let claims = TokenSigner::claims_now(office, &actor, role).valid_for(valid_for);
            let token = signer.sign(&claims)?;
            if let Some(path) = out {
                secret::write_private(&path, &token)?;
            }
            Ok(token)
        }
        TokenCommand::PublicKey => Ok(signer.public_key()),
    }
}

/// The default actor of an office's operator token.
fn office_actor(province: &Province, office: &Office) -> String {
    match office {
        Office::Province => "văn phòng Đảng ủy Công an tỉnh".into(),
        Office::District(unit) => format!(
            "văn phòng cấp ủy {}",
            province
                .unit(unit)
                .map_or(unit.as_str(), |u| u.name.as_str())
        ),
    }
}

/// Writes an operator token for each of `offices` as `<credentials>/<slug>.token`,
/// keeping one that still verifies and replacing one that has expired (or that another
/// key signed).
pub fn ensure_office_tokens(
    credentials: &Path,
    province: &Province,
    offices: &[Office],
) -> anyhow::Result<()> {
    for office in offices {
        let path = credentials.join(format!("{}.token", office.slug()));
        ensure_token(
            credentials,
            &path,
            office,
            &office_actor(province, office),
            Role::Operator,
        )?;
    }
    Ok(())
}

/// The file of the admin token of the site `site`'s office runs.
pub fn admin_token_file(credentials: &Path, site: &Office) -> PathBuf {
    credentials.join(format!("{}.admin.token", site.slug()))
}

/// Writes an admin token for the site of each of `sites` (the province for the hub or
/// the single server, a district for its own server) as
/// `<credentials>/<slug>.admin.token`, on the same terms as the office tokens.
pub fn ensure_admin_tokens(
    credentials: &Path,
    province: &Province,
    sites: &[Office],
) -> anyhow::Result<()> {
    for site in sites {
        let actor = format!("quản trị hệ thống, {}", office_actor(province, site));
        let path = admin_token_file(credentials, site);
        ensure_token(credentials, &path, site, &actor, Role::Admin)?;
    }
    Ok(())
}

/// Keeps the token at `path` if it still verifies, else writes a new one.
fn ensure_token(
    credentials: &Path,
    path: &Path,
    office: &Office,
    actor: &str,
    role: Role,
) -> anyhow::Result<()> {
    let signer = signer(credentials)?;
    let verifier = coord_auth::TokenVerifier::from_public_key(&signer.public_key())?;
    let current = std::fs::read_to_string(path).ok();
    if current.is_some_and(|t| verifier.verify(&t).is_ok()) {
        return Ok(());
    }
    let claims =
        TokenSigner::claims_now(office.clone(), actor, role).valid_for(OFFICE_TOKEN_VALIDITY);
    secret::write_private(path, &signer.sign(&claims)?)?;
    Ok(())
}

/// The province and every unit: the offices a single local system runs.
pub fn all_offices(province: &Province) -> Vec<Office> {
    std::iter::once(Office::Province)
        .chain(
            province
                .units
                .iter()
                .map(|u| Office::District(u.id.clone())),
        )
        .collect()
}

/// Which token each request carries.
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    /// `--token`: used for everything when given.
    pub explicit: Option<String>,
    /// Tokens by office slug, from a credentials folder.
    pub by_office: HashMap<String, String>,
    /// Whose token a request sends when it names no office: the office of the site
    /// `--gateway` belongs to (`--site`), since a site refuses another site's offices.
    pub default_slug: String,
}

impl TokenSet {
    /// `explicit`, plus every `*.token` in `dir` (a missing folder is no error).
    pub fn load(explicit: Option<String>, dir: &Path) -> Self {
        let mut by_office = HashMap::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "token")
                    && let (Some(stem), Ok(text)) = (
                        path.file_stem().and_then(|s| s.to_str()),
                        std::fs::read_to_string(&path),
                    )
                {
                    by_office.insert(stem.to_owned(), text.trim().to_owned());
                }
            }
        }
        Self {
            explicit,
            by_office,
            default_slug: "province".into(),
        }
    }

    /// The same set, sending office `slug`'s token when a request names no office.
    pub fn defaulting_to(mut self, slug: &str) -> Self {
        slug.clone_into(&mut self.default_slug);
        self
    }

    /// The same set, sending office `slug`'s token with every request.
    pub fn for_slug(mut self, slug: &str) -> Self {
        self.explicit = self.by_office.get(slug).cloned();
        self
    }

    /// The same set, sending the admin token of the site `site`'s office runs with every
    /// request, unless `--token` was given.
    pub fn for_admin(mut self, site: &Office) -> Self {
        if self.explicit.is_none() {
            self.explicit = self
                .by_office
                .get(&format!("{}.admin", site.slug()))
                .cloned();
        }
        self
    }

    /// The token for a request on behalf of `office` (`None`: the `--site` office's,
    /// see [`TokenSet::defaulting_to`]), else the province's.
    pub fn for_office(&self, office: Option<&str>) -> Option<&str> {
        if let Some(t) = &self.explicit {
            return Some(t);
        }
        let slug = office
            .and_then(|o| o.parse::<Office>().ok())
            .map_or_else(|| self.default_slug.clone(), |o| o.slug().to_owned());
        self.by_office
            .get(&slug)
            .or_else(|| self.by_office.get("province"))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offices_init_takes_an_existing_signing_key_and_never_makes_one() {
        let dir = tempfile::tempdir().unwrap();
        let err = existing_signer(dir.path()).err().unwrap();
        assert!(
            format!("{err:#}").contains("no token signing key"),
            "{err:#}"
        );
        assert!(
            !dir.path().join(SIGNING_KEY_FILE).exists(),
            "a key was made"
        );
        let made = signer(dir.path()).unwrap().public_key();
        assert_eq!(existing_signer(dir.path()).unwrap().public_key(), made);
    }

    #[test]
    fn office_tokens_are_written_once_and_picked_by_office() {
        let dir = tempfile::tempdir().unwrap();
        let province = Province::from_toml_str(coord_domain::province::AN_GIANG_TOML).unwrap();
        let offices = all_offices(&province);
        ensure_office_tokens(dir.path(), &province, &offices).unwrap();
        let first = std::fs::read_to_string(dir.path().join("long-xuyen.token")).unwrap();
        ensure_office_tokens(dir.path(), &province, &offices).unwrap();
        assert_eq!(
            first,
            std::fs::read_to_string(dir.path().join("long-xuyen.token")).unwrap()
        );
        let set = TokenSet::load(None, dir.path());
        assert_eq!(set.by_office.len(), 12);
        assert_eq!(
            set.for_office(Some("district:long-xuyen")),
            Some(first.as_str())
        );
        let verifier =
            coord_auth::TokenVerifier::from_public_key(&signer(dir.path()).unwrap().public_key())
                .unwrap();
        let claims = verifier.verify(set.for_office(None).unwrap()).unwrap();
        assert_eq!(claims.office, Office::Province);
        assert!(claims.exp.is_some(), "office tokens expire");
        assert!(office_of(&province, "district:nowhere").is_err());
        // At an office's own site, a request naming no office goes as that office.
        let at_site = TokenSet::load(None, dir.path()).defaulting_to("long-xuyen");
        assert_eq!(at_site.for_office(None), Some(first.as_str()));
        let claims = verifier
            .verify(at_site.for_office(Some("province")).unwrap())
            .unwrap();
        assert_eq!(claims.office, Office::Province);
    }

    #[test]
    fn a_sites_admin_token_is_its_own_file_and_used_for_operations_only() {
        let dir = tempfile::tempdir().unwrap();
        let province = Province::from_toml_str(coord_domain::province::AN_GIANG_TOML).unwrap();
        let lx = office_of(&province, "long-xuyen").unwrap();
        ensure_office_tokens(dir.path(), &province, &[Office::Province]).unwrap();
        ensure_admin_tokens(dir.path(), &province, &[Office::Province, lx.clone()]).unwrap();
        let verifier =
            coord_auth::TokenVerifier::from_public_key(&signer(dir.path()).unwrap().public_key())
                .unwrap();
        let set = TokenSet::load(None, dir.path());
        let operator = verifier.verify(set.for_office(None).unwrap()).unwrap();
        assert_eq!(operator.role, Role::Operator);
        let admin = set.clone().for_admin(&lx);
        let claims = verifier.verify(admin.for_office(None).unwrap()).unwrap();
        assert_eq!((claims.role, claims.office), (Role::Admin, lx.clone()));
        let mode = {
            use std::os::unix::fs::PermissionsExt as _;
            let file = admin_token_file(dir.path(), &Office::Province);
            std::fs::metadata(file).unwrap().permissions().mode()
        };
        assert_eq!(mode & 0o777, 0o600);
        // `--token` wins.
        let explicit = TokenSet::load(Some("given".into()), dir.path()).for_admin(&lx);
        assert_eq!(explicit.for_office(None), Some("given"));
    }

    #[test]
    fn an_expired_office_token_is_replaced_on_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let province = Province::from_toml_str(coord_domain::province::AN_GIANG_TOML).unwrap();
        let signer = signer(dir.path()).unwrap();
        let mut stale = TokenSigner::claims_now(Office::Province, "cũ", Role::Operator);
        stale.iat -= 7200;
        let stale = signer
            .sign(&stale.valid_for(std::time::Duration::from_secs(3600)))
            .unwrap();
        let path = dir.path().join("province.token");
        secret::write_private(&path, &stale).unwrap();
        ensure_office_tokens(dir.path(), &province, &[Office::Province]).unwrap();
        let fresh = std::fs::read_to_string(&path).unwrap();
        assert_ne!(fresh, stale);
        let verifier = coord_auth::TokenVerifier::from_public_key(&signer.public_key()).unwrap();
        assert!(verifier.verify(&stale).is_err());
        assert_eq!(verifier.verify(&fresh).unwrap().office, Office::Province);
    }
}
