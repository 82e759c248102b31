//! ES256 compact JWS (RFC 7515, RFC 7518 §3.4) for OpenID Connect: signing ID tokens with a
//! P-256 key derived from a keyring key (or, for clients that ask, an Ed25519 key, RFC 8037), verifying client assertions and DPoP proofs
//! against a JWK, and JWK thumbprints (RFC 7638). Only ES256 is accepted: the algorithm
//! is never taken from the token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::EncodedPoint;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Why a JWS was refused (deliberately coarse: callers answer one error to the client).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwsError {
    #[error("malformed JWS")]
    Malformed,
    #[error("unsupported algorithm")]
    Algorithm,
    #[error("unusable key")]
    Key,
    #[error("bad signature")]
    Signature,
}

/// One ES256 signing key and its key id. It signs with *ring* (P-256 in assembly with a
/// precomputed base-point table: a fraction of the pure-Rust `p256`'s time per signature,
/// which figure 11's flows showed in every code exchange); `p256` derives the public key
/// and writes the JWK. ring's key pair is made at the first signature, so a key derived
/// only for its JWK (the JWKS, a logout's `id_token_hint`) costs what it did before.
pub struct Es256Key {
    kid: String,
    key: SigningKey,
    pair: std::sync::OnceLock<Option<ring::signature::EcdsaKeyPair>>,
}

impl std::fmt::Debug for Es256Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Es256Key")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Es256Key {
    /// The P-256 key derived from a 256-bit keyring key (a domain-separated SHA-256 of it,
    /// used as the private scalar). `None` in the negligible case the digest is not a valid
    /// scalar.
    pub fn from_seed(kid: impl Into<String>, seed: &[u8; 32]) -> Option<Self> {
        let mut h = Sha256::new();
        h.update(b"portcullis/oidc-es256/v1");
        h.update(seed);
        let scalar = h.finalize();
        let key = SigningKey::from_slice(scalar.as_slice()).ok()?;
        Some(Self {
            kid: kid.into(),
            key,
            pair: std::sync::OnceLock::new(),
        })
    }

    /// ring's key pair of the same scalar (`None` if ring refuses it: `p256` then signs).
    fn pair(&self) -> Option<&ring::signature::EcdsaKeyPair> {
        self.pair
            .get_or_init(|| {
                let scalar = zeroize::Zeroizing::new(self.key.to_bytes());
                let public = self.key.verifying_key().to_encoded_point(false);
                ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
                    &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    scalar.as_slice(),
                    public.as_bytes(),
                    &ring::rand::SystemRandom::new(),
                )
                .ok()
            })
            .as_ref()
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (with `kid`, `use`, `alg`).
    pub fn public_jwk(&self) -> Value {
        let mut jwk = jwk_of(self.key.verifying_key());
        if let Value::Object(m) = &mut jwk {
            m.insert("kid".into(), Value::String(self.kid.clone()));
            m.insert("use".into(), Value::String("sig".into()));
            m.insert("alg".into(), Value::String("ES256".into()));
        }
        jwk
    }

    /// Signs `claims` as a compact JWS with header `{"alg":"ES256","typ":typ,"kid":…}`.
    pub fn sign(&self, typ: &str, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": typ, "kid": self.kid});
        let input = signing_input(&header, claims);
        // The fixed encoding is JWS's (RFC 7518 §3.4: R and S, 32 bytes each). ring fails
        // only when the system's random source does; `p256` (RFC 6979, no randomness) then
        // signs instead.
        let rng = ring::rand::SystemRandom::new();
        match self.pair().map(|p| p.sign(&rng, input.as_bytes())) {
            Some(Ok(sig)) => format!("{input}.{}", B64.encode(sig.as_ref())),
            _ => sign_with(&self.key, &header, claims),
        }
    }
}

/// One Ed25519 signing key (EdDSA, RFC 8037) and its key id.
pub struct Ed25519Key {
    kid: String,
    pair: ring::signature::Ed25519KeyPair,
}

impl std::fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Key")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Ed25519Key {
    /// The Ed25519 key derived from a 256-bit keyring key (a domain-separated SHA-256 of
    /// it, used as the seed): another key than the ES256 one of the same keyring key.
    pub fn from_seed(kid: impl Into<String>, seed: &[u8; 32]) -> Option<Self> {
        let mut h = Sha256::new();
        h.update(b"portcullis/oidc-ed25519/v1");
        h.update(seed);
        let derived = h.finalize();
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(derived.as_slice()).ok()?;
        Some(Self {
            kid: kid.into(),
            pair,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as an OKP JWK (RFC 8037 §2, with `kid`, `use`, `alg`).
    pub fn public_jwk(&self) -> Value {
        use ring::signature::KeyPair;
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": B64.encode(self.pair.public_key().as_ref()),
            "kid": self.kid,
            "use": "sig",
            "alg": "EdDSA",
        })
    }

    /// Signs `claims` as a compact JWS with header `{"alg":"EdDSA","typ":typ,"kid":…}`.
    pub fn sign(&self, typ: &str, claims: &Value) -> String {
        let header = json!({"alg": "EdDSA", "typ": typ, "kid": self.kid});
        let input = signing_input(&header, claims);
        let sig = self.pair.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }
}

/// Signs with any P-256 key and header (tests and tools use it to play a client).
pub fn sign_with(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let sig: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.to_bytes()))
}

/// What a compact JWS signs: the encoded header and claims (RFC 7515 §5.1).
fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

/// The public JWK (`kty`, `crv`, `x`, `y`) of a P-256 key.
pub fn jwk_of(key: &VerifyingKey) -> Value {
    let point = key.to_encoded_point(false);
    let x = point.x().map(|x| B64.encode(x)).unwrap_or_default();
    let y = point.y().map(|y| B64.encode(y)).unwrap_or_default();
    json!({"kty": "EC", "crv": "P-256", "x": x, "y": y})
}

/// The parts of a compact JWS, decoded but not verified.
pub struct Unverified {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    input: String,
    signature: Vec<u8>,
}

/// Splits and decodes a compact JWS; the header's `alg` must be ES256.
pub fn decode(jws: &str) -> Result<Unverified, JwsError> {
    if jws.len() > 8192 {
        return Err(JwsError::Malformed);
    }
    let mut parts = jws.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    let object = |part: &str| -> Result<Map<String, Value>, JwsError> {
        let bytes = B64.decode(part).map_err(|_| JwsError::Malformed)?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(JwsError::Malformed),
        }
    };
    let header = object(h)?;
    if header.get("alg").and_then(Value::as_str) != Some("ES256") {
        return Err(JwsError::Algorithm);
    }
    Ok(Unverified {
        claims: object(c)?,
        header,
        input: format!("{h}.{c}"),
        signature: B64.decode(s).map_err(|_| JwsError::Malformed)?,
    })
}

impl Unverified {
    /// Checks the signature against a public JWK (EC P-256).
    pub fn verify(&self, jwk: &Value) -> Result<(), JwsError> {
        let key = verifying_key(jwk)?;
        let sig = Signature::from_slice(&self.signature).map_err(|_| JwsError::Signature)?;
        key.verify(self.input.as_bytes(), &sig)
            .map_err(|_| JwsError::Signature)
    }
}

fn coordinate(jwk: &Value, name: &str) -> Result<[u8; 32], JwsError> {
    let text = jwk.get(name).and_then(Value::as_str).ok_or(JwsError::Key)?;
    let bytes = B64.decode(text).map_err(|_| JwsError::Key)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| JwsError::Key)
}

/// The verifying key of a public EC P-256 JWK; a JWK carrying a private part (`d`) is
/// refused, as RFC 9449 requires of DPoP proofs.
pub fn verifying_key(jwk: &Value) -> Result<VerifyingKey, JwsError> {
    if jwk.get("kty").and_then(Value::as_str) != Some("EC")
        || jwk.get("crv").and_then(Value::as_str) != Some("P-256")
        || jwk.get("d").is_some()
    {
        return Err(JwsError::Key);
    }
    let x = coordinate(jwk, "x")?;
    let y = coordinate(jwk, "y")?;
    let point = EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
    VerifyingKey::from_encoded_point(&point).map_err(|_| JwsError::Key)
}

/// The JWK SHA-256 thumbprint (RFC 7638) of a public EC key, base64url.
pub fn thumbprint(jwk: &Value) -> Result<String, JwsError> {
    let key = verifying_key(jwk)?;
    let canonical = jwk_of(&key);
    let text = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        canonical
            .get("x")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        canonical
            .get("y")
            .and_then(Value::as_str)
            .unwrap_or_default()
    );
    Ok(B64.encode(Sha256::digest(text.as_bytes())))
}

/// base64url of SHA-256, as PKCE S256 (RFC 7636) and DPoP `ath` use it.
pub fn s256(text: &str) -> String {
    B64.encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_refuses_tampering() {
        let key = Es256Key::from_seed("1", &[7u8; 32]).expect("key");
        let jws = key.sign("JWT", &json!({"sub": "a"}));
        let u = decode(&jws).expect("decode");
        assert!(u.verify(&key.public_jwk()).is_ok());
        let other = Es256Key::from_seed("2", &[8u8; 32]).expect("key");
        assert_eq!(u.verify(&other.public_jwk()), Err(JwsError::Signature));
        let mut parts: Vec<&str> = jws.split('.').collect();
        let forged = B64.encode(json!({"sub": "b"}).to_string());
        parts[1] = &forged;
        let tampered = decode(&parts.join(".")).expect("decode");
        assert_eq!(tampered.verify(&key.public_jwk()), Err(JwsError::Signature));
        let none = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), B64.encode("{}"));
        assert!(matches!(decode(&none), Err(JwsError::Algorithm)));
    }

    #[test]
    fn es256_signs_what_ring_and_p256_verify_with_the_published_key() {
        let key = Es256Key::from_seed("3", &[3u8; 32]).expect("key");
        let jwk = key.public_jwk();
        let point = |c: &str| B64.decode(jwk[c].as_str().unwrap()).unwrap();
        let public = [vec![4u8], point("x"), point("y")].concat();
        let verifier = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            public,
        );
        // ring's randomized signature, then the `p256` fallback's, under the one JWK.
        assert!(key.pair.get().is_none(), "made only at the first signature");
        let signed = key.sign("JWT", &json!({"sub": "x"}));
        assert!(key.pair.get().is_some_and(Option::is_some), "ring signed");
        let fallback = sign_with(
            &key.key,
            &json!({"alg": "ES256", "typ": "JWT", "kid": "3"}),
            &json!({"sub": "x"}),
        );
        for jws in [&signed, &fallback] {
            let (input, sig) = jws.rsplit_once('.').unwrap();
            let sig = B64.decode(sig).unwrap();
            assert_eq!(sig.len(), 64);
            assert!(verifier.verify(input.as_bytes(), &sig).is_ok());
            assert!(verifier.verify(b"other", &sig).is_err());
            assert!(decode(jws).unwrap().verify(&jwk).is_ok());
        }
        assert_eq!(
            signed.rsplit_once('.').unwrap().0,
            fallback.rsplit_once('.').unwrap().0
        );
    }

    #[test]
    fn ed25519_signs_what_ring_verifies() {
        let key = Ed25519Key::from_seed("7-ed25519", &[7u8; 32]).unwrap();
        let jwt = key.sign("JWT", &json!({"sub": "x"}));
        let jwk = key.public_jwk();
        assert_eq!(
            (jwk["kty"].as_str(), jwk["crv"].as_str()),
            (Some("OKP"), Some("Ed25519"))
        );
        let public = B64.decode(jwk["x"].as_str().unwrap()).unwrap();
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let verifier = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public);
        assert!(verifier
            .verify(input.as_bytes(), &B64.decode(sig).unwrap())
            .is_ok());
        assert!(verifier
            .verify(b"other", &B64.decode(sig).unwrap())
            .is_err());
        // Another key than the ES256 one of the same seed.
        let es = Es256Key::from_seed("7", &[7u8; 32]).unwrap();
        assert_ne!(es.public_jwk()["x"], jwk["x"]);
    }

    #[test]
    fn thumbprint_matches_rfc7638_shape_and_refuses_private_keys() {
        let key = Es256Key::from_seed("1", &[1u8; 32]).expect("key");
        let jwk = key.public_jwk();
        let t = thumbprint(&jwk).expect("thumbprint");
        assert_eq!(t.len(), 43);
        let mut private = jwk.clone();
        private["d"] = Value::String("AAAA".into());
        assert_eq!(thumbprint(&private), Err(JwsError::Key));
        // RFC 7636 appendix B.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
