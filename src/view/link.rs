//! The clinician view's link token: a short-lived JWT (HS256) that names the patient and the card
//! that issued it, and nothing else. Whoever holds the link may see that one patient's view until
//! the token expires; an altered token, one signed with another key, one past its expiry or one
//! claiming a lifetime longer than [`MAX_TTL`] is refused, with no reason given.
//!
//! The key is 32 or more bytes: a secret the service is given (every replica the same, so that a
//! link issued by one is honoured by another), or made at start-up ([`LinkKey::generate`]: links
//! die with the process, and behind a load balancer only the replica that issued a link honours
//! it). See docs/decisions.md "The clinician view's link".

use crate::fhir::PatientId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a link lives unless the issuer says otherwise: long enough to be clicked from a card
/// just shown, short enough that a link copied out of the EHR is soon useless.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);
/// The longest lifetime a token may claim; a longer one is refused even with a valid signature.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 60);
/// The shortest secret accepted: the HMAC-SHA-256 key length.
pub const MIN_SECRET_BYTES: usize = 32;
/// Tokens longer than this are refused before they are parsed (ours are about 250 bytes).
const MAX_TOKEN_BYTES: usize = 1024;
/// The audience every link token names: a token made for anything else, with the same key, is
/// not a link.
const AUDIENCE: &str = "urn:trdscreen:clinician-view";
/// Clock difference tolerated for a token issued "in the future" by another replica.
const ISSUED_SKEW_SECS: u64 = 60;

/// The HMAC key links are signed and checked with.
pub struct LinkKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

/// What a valid link names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub patient: PatientId,
    /// The id (`uuid`) of the card whose link this is.
    pub card_id: String,
    /// Seconds since the epoch.
    pub issued_at: u64,
    pub expires_at: u64,
}

/// The link is not valid: altered, expired, of another key or not a link at all. No detail, to the
/// holder or anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the link is not valid")]
pub struct Refused;

/// A link could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link secret is shorter than {MIN_SECRET_BYTES} bytes")]
    WeakSecret,
    #[error("the system's random number generator failed")]
    NoRandomness,
    #[error("a card id is 1 to 128 letters, digits, '-', '_' or '.'")]
    BadCardId,
    #[error("a link lives 1 second to 30 minutes")]
    BadTtl,
    #[error("the link could not be signed")]
    Signing,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    aud: String,
    sub: String,
    card: String,
    iat: u64,
    exp: u64,
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn valid_card_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl LinkKey {
    /// A key from a configured secret (the same on every replica).
    pub fn from_secret(secret: &[u8]) -> Result<LinkKey, LinkError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(LinkError::WeakSecret);
        }
        Ok(LinkKey {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        })
    }

    /// The key the settings call for: the configured secret (`cds.view_link_secret_file` or
    /// `TRDSCREEN_CDS_VIEW_LINK_SECRET`), else one made now.
    pub fn from_secrets(secrets: &crate::settings::Secrets) -> Result<LinkKey, LinkError> {
        match &secrets.view_link_secret {
            Some(secret) => LinkKey::from_secret(secret),
            None => LinkKey::generate(),
        }
    }

    /// A key of 32 random bytes made now: links die with the process.
    pub fn generate() -> Result<LinkKey, LinkError> {
        let mut secret = [0u8; MIN_SECRET_BYTES];
        getrandom::fill(&mut secret).map_err(|_| LinkError::NoRandomness)?;
        LinkKey::from_secret(&secret)
    }

    /// A token for the view of `patient`, linked from card `card_id`, valid from `now` for `ttl`.
    pub fn issue(
        &self,
        patient: &PatientId,
        card_id: &str,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<String, LinkError> {
        if !valid_card_id(card_id) {
            return Err(LinkError::BadCardId);
        }
        if ttl.as_secs() == 0 || ttl > MAX_TTL {
            return Err(LinkError::BadTtl);
        }
        let iat = seconds(now);
        let wire = Wire {
            aud: AUDIENCE.to_owned(),
            sub: patient.as_str().to_owned(),
            card: card_id.to_owned(),
            iat,
            exp: iat + ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &wire, &self.encoding)
            .map_err(|_| LinkError::Signing)
    }

    /// The patient and card a token names, when it is one of ours, unaltered and unexpired at `now`.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, Refused> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Refused);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against `now`, to the second, with no leeway.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        let wire = jsonwebtoken::decode::<Wire>(token, &self.decoding, &validation)
            .map_err(|_| Refused)?
            .claims;
        let now = seconds(now);
        let lifetime_ok = wire.exp > wire.iat && wire.exp - wire.iat <= MAX_TTL.as_secs();
        if !lifetime_ok || now >= wire.exp || wire.iat > now + ISSUED_SKEW_SECS {
            return Err(Refused);
        }
        if !valid_card_id(&wire.card) {
            return Err(Refused);
        }
        let patient = PatientId::parse(&wire.sub).map_err(|_| Refused)?;
        Ok(Claims {
            patient,
            card_id: wire.card,
            issued_at: wire.iat,
            expires_at: wire.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const CARD: &str = "6f1c1b9e-1a2b-4c3d-8e9f-0a1b2c3d4e5f";

    fn key() -> LinkKey {
        LinkKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn patient(id: &str) -> PatientId {
        PatientId::parse(id).unwrap()
    }

    #[test]
    fn a_link_names_its_patient_and_card_until_it_expires() {
        let token = key()
            .issue(&patient("p-1"), CARD, at(1_000_000), DEFAULT_TTL)
            .unwrap();
        let claims = key().verify(&token, at(1_000_000 + 299)).unwrap();
        assert_eq!(claims.patient, patient("p-1"));
        assert_eq!(claims.card_id, CARD);
        assert_eq!(claims.expires_at, 1_000_300);
        let payload: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        let mut names: Vec<&str> = payload
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["aud", "card", "exp", "iat", "sub"],
            "nothing but the patient id"
        );
    }

    #[test]
    fn replicas_given_one_secret_honour_each_others_links_and_generated_keys_do_not() {
        let shared = crate::settings::Secrets {
            view_link_secret: Some(b"0123456789abcdef0123456789abcdef".to_vec()),
            ..Default::default()
        };
        let (one, two) = (
            LinkKey::from_secrets(&shared).unwrap(),
            LinkKey::from_secrets(&shared).unwrap(),
        );
        let token = one
            .issue(&patient("p-1"), CARD, at(1_000_000), DEFAULT_TTL)
            .unwrap();
        assert!(two.verify(&token, at(1_000_001)).is_ok());
        let none = crate::settings::Secrets::default();
        let (a, b) = (
            LinkKey::from_secrets(&none).unwrap(),
            LinkKey::from_secrets(&none).unwrap(),
        );
        let token = a
            .issue(&patient("p-1"), CARD, at(1_000_000), DEFAULT_TTL)
            .unwrap();
        assert!(a.verify(&token, at(1_000_001)).is_ok());
        assert_eq!(b.verify(&token, at(1_000_001)), Err(Refused));
    }

    #[test]
    fn an_expired_link_is_refused() {
        let token = key()
            .issue(&patient("p-1"), CARD, at(1_000_000), DEFAULT_TTL)
            .unwrap();
        assert_eq!(key().verify(&token, at(1_000_300)), Err(Refused));
        assert_eq!(key().verify(&token, at(2_000_000)), Err(Refused));
    }

    /// The token with its payload's JSON changed by `edit`, the signature kept.
    fn with_payload(token: &str, edit: impl Fn(&mut serde_json::Value)) -> String {
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        edit(&mut payload);
        let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
        format!("{}.{payload}.{}", parts[0], parts[2])
    }

    #[test]
    fn a_link_altered_to_name_another_patient_or_card_or_a_later_expiry_is_refused() {
        let token = key()
            .issue(&patient("p-1"), CARD, at(1_000_000), DEFAULT_TTL)
            .unwrap();
        let now = at(1_000_010);
        let other_patient = with_payload(&token, |p| p["sub"] = "p-2".into());
        let other_card = with_payload(&token, |p| p["card"] = "another-card".into());
        let later = with_payload(&token, |p| p["exp"] = 1_000_900.into());
        for altered in [other_patient, other_card, later] {
            assert_eq!(key().verify(&altered, now), Err(Refused), "{altered}");
        }
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(key().verify(&flipped, now), Err(Refused));
        assert!(
            key().verify(&token, now).is_ok(),
            "the original still holds"
        );
    }

    #[test]
    fn a_link_of_another_key_or_without_a_signature_is_refused() {
        let token = LinkKey::generate()
            .unwrap()
            .issue(&patient("p-1"), CARD, at(1_000_000), DEFAULT_TTL)
            .unwrap();
        assert_eq!(key().verify(&token, at(1_000_010)), Err(Refused));
        let ours = key()
            .issue(&patient("p-1"), CARD, at(1_000_000), DEFAULT_TTL)
            .unwrap();
        let parts: Vec<&str> = ours.split('.').collect();
        let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        for unsigned in [
            format!("{none}.{}.", parts[1]),
            format!("{}.{}.", parts[0], parts[1]),
        ] {
            assert_eq!(key().verify(&unsigned, at(1_000_010)), Err(Refused));
        }
        assert_eq!(key().verify("", at(1_000_010)), Err(Refused));
        assert_eq!(key().verify(&"a".repeat(5000), at(1_000_010)), Err(Refused));
    }

    #[test]
    fn a_token_claiming_a_long_life_or_issued_in_the_future_is_refused() {
        let long = key()
            .issue(&patient("p-1"), CARD, at(1_000_000), MAX_TTL)
            .unwrap();
        assert!(key().verify(&long, at(1_000_010)).is_ok());
        assert_eq!(
            key().issue(
                &patient("p-1"),
                CARD,
                at(1_000_000),
                MAX_TTL + Duration::from_secs(1)
            ),
            Err(LinkError::BadTtl)
        );
        let future = key()
            .issue(&patient("p-1"), CARD, at(1_000_000), DEFAULT_TTL)
            .unwrap();
        assert_eq!(key().verify(&future, at(1_000_000 - 61)), Err(Refused));
    }

    #[test]
    fn short_secrets_and_odd_card_ids_are_refused_when_issuing() {
        assert_eq!(
            LinkKey::from_secret(b"short").unwrap_err(),
            LinkError::WeakSecret
        );
        for card in ["", "a b", "x\n", &"c".repeat(129)] {
            assert_eq!(
                key().issue(&patient("p-1"), card, at(1), DEFAULT_TTL),
                Err(LinkError::BadCardId)
            );
        }
    }
}
