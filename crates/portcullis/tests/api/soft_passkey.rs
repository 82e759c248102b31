//! A software passkey for the HTTP tests: an ES256 key (ring) that answers the
//! `navigator.credentials.create` and `.get` options the service hands out, with "none"
//! attestation, the way a browser and an authenticator would (user present and verified).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::{json, Value};

pub struct SoftPasskey {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    pub credential_id: Vec<u8>,
    user_handle: Option<String>,
    counter: u32,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// CBOR: a major type with a small length (below 65,536).
fn head(major: u8, len: usize, out: &mut Vec<u8>) {
    let m = major << 5;
    if len < 24 {
        out.push(m | u8::try_from(len).unwrap());
    } else if len < 256 {
        out.push(m | 24);
        out.push(u8::try_from(len).unwrap());
    } else {
        out.push(m | 25);
        out.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
    }
}

fn text(s: &str, out: &mut Vec<u8>) {
    head(3, s.len(), out);
    out.extend_from_slice(s.as_bytes());
}

fn bytes(b: &[u8], out: &mut Vec<u8>) {
    head(2, b.len(), out);
    out.extend_from_slice(b);
}

impl SoftPasskey {
    pub fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let mut credential_id = vec![0u8; 32];
        rng.fill(&mut credential_id).unwrap();
        Self {
            key,
            rng,
            credential_id,
            user_handle: None,
            counter: 0,
        }
    }

    /// The COSE form of the public key (EC2, ES256, P-256).
    fn cose_key(&self) -> Vec<u8> {
        let public = self.key.public_key().as_ref(); // 0x04 | x | y
        let mut out = Vec::new();
        head(5, 5, &mut out);
        out.extend_from_slice(&[0x01, 0x02]); // kty: EC2
        out.extend_from_slice(&[0x03, 0x26]); // alg: -7 (ES256)
        out.extend_from_slice(&[0x20, 0x01]); // crv: P-256
        out.push(0x21); // x
        bytes(&public[1..33], &mut out);
        out.push(0x22); // y
        bytes(&public[33..65], &mut out);
        out
    }

    fn auth_data(&self, rp_id: &str, flags: u8, attested: bool) -> Vec<u8> {
        let mut out = digest(&SHA256, rp_id.as_bytes()).as_ref().to_vec();
        out.push(flags);
        out.extend_from_slice(&self.counter.to_be_bytes());
        if attested {
            out.extend_from_slice(&[0u8; 16]); // AAGUID
            out.extend_from_slice(
                &u16::try_from(self.credential_id.len())
                    .unwrap()
                    .to_be_bytes(),
            );
            out.extend_from_slice(&self.credential_id);
            out.extend_from_slice(&self.cose_key());
        }
        out
    }

    /// The `PublicKeyCredential` answering `options` (`{"publicKey": …}` of a registration)
    /// from `origin`.
    pub fn register(&mut self, options: &Value, origin: &str) -> Value {
        let pk = &options["publicKey"];
        let rp_id = pk["rp"]["id"].as_str().unwrap();
        self.user_handle = pk["user"]["id"].as_str().map(str::to_owned);
        let client_data = json!({
            "type": "webauthn.create",
            "challenge": pk["challenge"],
            "origin": origin,
            "crossOrigin": false,
        })
        .to_string();
        // UP | UV | AT
        let auth_data = self.auth_data(rp_id, 0x45, true);
        let mut att = Vec::new();
        head(5, 3, &mut att);
        text("fmt", &mut att);
        text("none", &mut att);
        text("attStmt", &mut att);
        head(5, 0, &mut att);
        text("authData", &mut att);
        bytes(&auth_data, &mut att);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&att),
                "clientDataJSON": b64(client_data.as_bytes()),
            },
            "extensions": {},
        })
    }

    /// The `PublicKeyCredential` answering `options` (`{"publicKey": …}` of an assertion)
    /// from `origin`.
    pub fn assert(&mut self, options: &Value, origin: &str) -> Value {
        let pk = &options["publicKey"];
        let rp_id = pk["rpId"].as_str().unwrap();
        self.counter += 1;
        let client_data = json!({
            "type": "webauthn.get",
            "challenge": pk["challenge"],
            "origin": origin,
            "crossOrigin": false,
        })
        .to_string();
        // UP | UV
        let auth_data = self.auth_data(rp_id, 0x05, false);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(digest(&SHA256, client_data.as_bytes()).as_ref());
        let signature = self.key.sign(&self.rng, &signed).unwrap();
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(client_data.as_bytes()),
                "signature": b64(signature.as_ref()),
                "userHandle": self.user_handle,
            },
            "extensions": {},
        })
    }
}
