//! Bearer tokens: compact JWS (RFC 7515) with `alg: EdDSA` (RFC 8037), claims `office`,
//! `sub` (the actor), `role`, `iat` and `exp` (RFC 7519; a token is refused from `exp`
//! on). The signing key is an nkey seed (Ed25519); the verifying side needs only its
//! public key.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use coord_domain::Office;
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};

/// What a token holder may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sends commands for its office, and reads.
    Operator,
    /// Queries, audit and exports only.
    Reader,
    /// Runs the operations that change a site (rebuild, redrive, import, anything under
    /// `/v1/admin`), only at the site its office runs; reads; sends no commands.
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "operator" => Ok(Role::Operator),
            "reader" => Ok(Role::Reader),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role `{other}`: expected operator, reader or admin"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Operator => "operator",
            Role::Reader => "reader",
            Role::Admin => "admin",
        })
    }
}

/// What a token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The office the holder acts for.
    pub office: Office,
    /// Who acts (recorded on every event), e.g. `văn thư tiếp nhận`.
    #[serde(rename = "sub")]
    pub actor: String,
    pub role: Role,
    /// Issued at (seconds since the Unix epoch).
    pub iat: i64,
    /// Expires at (seconds since the Unix epoch); a token without it never expires
    /// (only tokens made before expiry existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

impl Claims {
    /// The same claims, valid for `ttl` from their issue time.
    pub fn valid_for(mut self, ttl: std::time::Duration) -> Self {
        let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        self.exp = Some(self.iat.saturating_add(secs));
        self
    }

    /// Has this token expired at `now` (seconds since the epoch)?
    pub fn expired_at(&self, now: i64) -> bool {
        self.exp.is_some_and(|exp| now >= exp)
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is not three base64url parts separated by dots")]
    Malformed,
    #[error("the token's header is not {{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}}")]
    UnsupportedAlgorithm,
    #[error("the token's signature does not verify with this gateway's key")]
    BadSignature,
    #[error("the token's claims are not valid: {0}")]
    BadClaims(String),
    #[error("the token expired at {expired_at} (seconds since the epoch); ask for a new one")]
    Expired { expired_at: i64 },
    #[error("the actor must be 1 to 200 characters")]
    BadActor,
    #[error("not a usable key: {0}")]
    BadKey(String),
}

#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct Header {
    alg: String,
    typ: String,
}

fn header() -> Header {
    Header {
        alg: "EdDSA".into(),
        typ: "JWT".into(),
    }
}

/// Makes tokens. Held by the operator (`coordctl token create`, the launcher).
pub struct TokenSigner {
    key: KeyPair,
}

impl TokenSigner {
    /// A new random signing key.
    pub fn generate() -> Self {
        Self {
            key: KeyPair::new_account(),
        }
    }

    /// From an nkey seed (`SA…`), as written by [`TokenSigner::seed`].
    pub fn from_seed(seed: &str) -> Result<Self, TokenError> {
        KeyPair::from_seed(seed.trim())
            .map(|key| Self { key })
            .map_err(|e| TokenError::BadKey(e.to_string()))
    }

    /// The secret seed, to be stored owner-only.
    pub fn seed(&self) -> String {
        self.key.seed().expect("a generated key has a seed")
    }

    /// The public key the gateway verifies with.
    pub fn public_key(&self) -> String {
        self.key.public_key()
    }

    /// A signed token for `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        check_actor(&claims.actor)?;
        let head = B64.encode(serde_json::to_vec(&header()).expect("serializes"));
        let body = B64.encode(serde_json::to_vec(claims).expect("serializes"));
        let input = format!("{head}.{body}");
        let signature = self
            .key
            .sign(input.as_bytes())
            .map_err(|e| TokenError::BadKey(e.to_string()))?;
        Ok(format!("{input}.{}", B64.encode(signature)))
    }

    /// Claims issued now.
    pub fn claims_now(office: Office, actor: &str, role: Role) -> Claims {
        Claims {
            office,
            actor: actor.trim().to_owned(),
            role,
            iat: chrono::Utc::now().timestamp(),
            exp: None,
        }
    }
}

fn check_actor(actor: &str) -> Result<(), TokenError> {
    let n = actor.trim().chars().count();
    if n == 0 || n > 200 {
        return Err(TokenError::BadActor);
    }
    Ok(())
}

/// Checks tokens. Held by the gateway: the public key only.
///
/// A token whose signature verified is remembered (its exact text and claims, up to
/// [`VERIFIED_TOKENS`] of them), so a client sending the same token with every request
/// costs one Ed25519 verification (about 37 µs here), not one a request. Only the
/// signature check is skipped: the expiry is checked at every use, and any other text is
/// verified in full. Nothing can fill the memory but tokens this key signed.
#[derive(Clone)]
pub struct TokenVerifier {
    key: std::sync::Arc<KeyPair>,
    verified: std::sync::Arc<std::sync::Mutex<HashMap<Box<str>, Claims>>>,
}

/// How many verified tokens a [`TokenVerifier`] remembers; when full it forgets them all.
pub const VERIFIED_TOKENS: usize = 4_096;

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenVerifier({})", self.key.public_key())
    }
}

impl TokenVerifier {
    /// From the signer's public key (`A…`).
    pub fn from_public_key(public_key: &str) -> Result<Self, TokenError> {
        KeyPair::from_public_key(public_key.trim())
            .map(|key| Self {
                key: std::sync::Arc::new(key),
                verified: Default::default(),
            })
            .map_err(|e| TokenError::BadKey(e.to_string()))
    }

    /// The claims of a token this key signed that has not expired.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_at(token, chrono::Utc::now().timestamp())
    }

    /// [`TokenVerifier::verify`] at the time `now` (seconds since the epoch).
    pub fn verify_at(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let token = token.trim();
        let claims = match self.remembered(token) {
            Some(claims) => claims,
            None => {
                let claims = self.verify_signed(token)?;
                self.remember(token, &claims);
                claims
            }
        };
        match claims.exp {
            Some(expired_at) if claims.expired_at(now) => Err(TokenError::Expired { expired_at }),
            _ => Ok(claims),
        }
    }

    /// The claims of `token` if its signature verifies with this key (expired or not).
    fn verify_signed(&self, token: &str) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(head), Some(body), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |part: &str| B64.decode(part).map_err(|_| TokenError::Malformed);
        let signature = decode(signature)?;
        let signed = &token[..head.len() + 1 + body.len()];
        self.key
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| TokenError::BadSignature)?;
        let parsed: Header =
            serde_json::from_slice(&decode(head)?).map_err(|_| TokenError::UnsupportedAlgorithm)?;
        if parsed != header() {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        let claims: Claims = serde_json::from_slice(&decode(body)?)
            .map_err(|e| TokenError::BadClaims(e.to_string()))?;
        check_actor(&claims.actor)?;
        Ok(claims)
    }

    fn remembered(&self, token: &str) -> Option<Claims> {
        let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        verified.get(token).cloned()
    }

    fn remember(&self, token: &str, claims: &Claims) {
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_TOKENS {
            verified.clear();
        }
        verified.insert(token.into(), claims.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            office: "district:long-xuyen".parse().unwrap(),
            actor: "văn thư tiếp nhận".into(),
            role: Role::Operator,
            iat: 1_700_000_000,
            exp: None,
        }
    }

    #[test]
    fn a_token_is_refused_from_its_expiry_on_and_its_expiry_is_signed() {
        let signer = TokenSigner::generate();
        let verifier = TokenVerifier::from_public_key(&signer.public_key()).unwrap();
        let claims = claims().valid_for(std::time::Duration::from_secs(3600));
        assert_eq!(claims.exp, Some(1_700_003_600));
        let token = signer.sign(&claims).unwrap();
        assert_eq!(verifier.verify_at(&token, 1_700_003_599).unwrap(), claims);
        assert_eq!(
            verifier.verify_at(&token, 1_700_003_600),
            Err(TokenError::Expired {
                expired_at: 1_700_003_600
            })
        );
        // Stretching the expiry breaks the signature.
        let parts: Vec<&str> = token.split('.').collect();
        let longer = claims.valid_for(std::time::Duration::from_secs(7200));
        let body = B64.encode(serde_json::to_vec(&longer).unwrap());
        let forged = format!("{}.{body}.{}", parts[0], parts[2]);
        assert_eq!(
            verifier.verify_at(&forged, 1_700_003_600),
            Err(TokenError::BadSignature)
        );
        // A token made before expiry existed has no `exp` and stays valid.
        let old = signer.sign(&self::claims()).unwrap();
        assert!(verifier.verify_at(&old, i64::MAX).is_ok());
    }

    #[test]
    fn a_remembered_token_still_expires_and_any_other_text_is_verified_in_full() {
        let signer = TokenSigner::generate();
        let verifier = TokenVerifier::from_public_key(&signer.public_key()).unwrap();
        let claims = claims().valid_for(std::time::Duration::from_secs(60));
        let token = signer.sign(&claims).unwrap();
        assert_eq!(verifier.verify_at(&token, 1_700_000_000).unwrap(), claims);
        assert_eq!(verifier.remembered(&token), Some(claims.clone()));
        // The second use comes from memory, and is refused from the expiry on.
        assert_eq!(
            verifier.verify_at(&format!(" {token}\n"), 1_700_000_060),
            Err(TokenError::Expired {
                expired_at: 1_700_000_060
            })
        );
        // A token that differs in its signature alone is not the remembered one.
        // (Its first character: the last one holds padding bits and may not change.)
        let at = token.rfind('.').unwrap() + 1;
        let first = if token[at..].starts_with('A') {
            "B"
        } else {
            "A"
        };
        let forged = format!("{}{first}{}", &token[..at], &token[at + 1..]);
        assert_eq!(
            verifier.verify_at(&forged, 1_700_000_000),
            Err(TokenError::BadSignature)
        );
        // A clone shares what was verified; another key's verifier does not.
        assert!(verifier.clone().remembered(&token).is_some());
        let other = TokenVerifier::from_public_key(&TokenSigner::generate().public_key()).unwrap();
        assert_eq!(
            other.verify_at(&token, 1_700_000_000),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn verified_tokens_are_remembered_up_to_a_bound() {
        let signer = TokenSigner::generate();
        let verifier = TokenVerifier::from_public_key(&signer.public_key()).unwrap();
        for n in 0..=VERIFIED_TOKENS {
            let mut claims = claims();
            claims.iat += n as i64;
            verifier.verify(&signer.sign(&claims).unwrap()).unwrap();
        }
        let held = verifier.verified.lock().unwrap().len();
        assert!((1..=VERIFIED_TOKENS).contains(&held), "{held} remembered");
    }

    #[test]
    fn a_signed_token_verifies_with_the_public_key_and_keeps_its_claims() {
        let signer = TokenSigner::generate();
        let token = signer.sign(&claims()).unwrap();
        let verifier = TokenVerifier::from_public_key(&signer.public_key()).unwrap();
        assert_eq!(verifier.verify(&token).unwrap(), claims());
    }

    #[test]
    fn a_token_from_another_key_is_refused() {
        let token = TokenSigner::generate().sign(&claims()).unwrap();
        let other = TokenVerifier::from_public_key(&TokenSigner::generate().public_key()).unwrap();
        assert_eq!(other.verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn changed_claims_break_the_signature() {
        let signer = TokenSigner::generate();
        let verifier = TokenVerifier::from_public_key(&signer.public_key()).unwrap();
        let token = signer.sign(&claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims();
        forged.office = Office::Province;
        let body = B64.encode(serde_json::to_vec(&forged).unwrap());
        let forged = format!("{}.{body}.{}", parts[0], parts[2]);
        assert_eq!(verifier.verify(&forged), Err(TokenError::BadSignature));
        assert_eq!(verifier.verify("abc"), Err(TokenError::Malformed));
        assert_eq!(verifier.verify("a.b.c.d"), Err(TokenError::Malformed));
    }

    #[test]
    fn roles_read_and_write_as_their_names() {
        for role in [Role::Operator, Role::Reader, Role::Admin] {
            assert_eq!(role.to_string().parse::<Role>(), Ok(role));
            let json = serde_json::to_value(role).unwrap();
            assert_eq!(json, role.to_string());
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn the_seed_round_trips() {
        let signer = TokenSigner::generate();
        let again = TokenSigner::from_seed(&signer.seed()).unwrap();
        assert_eq!(again.public_key(), signer.public_key());
        assert!(TokenSigner::from_seed("not a seed").is_err());
    }
}
