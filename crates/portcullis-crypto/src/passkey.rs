//! Passkeys (WebAuthn) through `webauthn-rs`: the ceremonies' options and checks, with every
//! value crossing this boundary as JSON text, so the domain keeps the state (in its steps) and
//! the credentials (in its store) without knowing the protocol's types.

use uuid::Uuid;
use webauthn_rs::prelude::{
    CredentialID, DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Webauthn,
    WebauthnBuilder,
};

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// The relying party's settings are unusable (a bad origin or RP ID).
    #[error("passkey settings: {0}")]
    Config(String),
    /// The browser's answer was malformed or did not verify.
    #[error("passkey check failed: {0}")]
    Rejected(String),
    /// Stored state or credential could not be read.
    #[error("passkey state: {0}")]
    State(String),
}

/// The relying party: this service, as browsers see it.
pub struct PasskeyRp {
    webauthn: Webauthn,
}

impl std::fmt::Debug for PasskeyRp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasskeyRp(..)")
    }
}

/// A registration started: options for `navigator.credentials.create`, state to keep.
pub struct Started {
    pub options_json: String,
    pub state_json: String,
}

/// A registered passkey: its credential ID (base64url) and the credential to store.
pub struct Registered {
    pub credential_id: String,
    pub passkey_json: String,
}

/// A verified assertion: the credential to store back when its counter moved.
pub struct Verified {
    pub credential_id: String,
    pub updated_passkey_json: Option<String>,
}

fn rejected(e: impl std::fmt::Display) -> PasskeyError {
    PasskeyError::Rejected(e.to_string())
}

fn state(e: impl std::fmt::Display) -> PasskeyError {
    PasskeyError::State(e.to_string())
}

fn b64url(id: &CredentialID) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_slice())
}

impl PasskeyRp {
    /// `origin` is the address people use (e.g. `https://bank.example`); the RP ID is its
    /// host. `any_port` accepts the origin's host on any port (local development).
    pub fn new(origin: &str, rp_name: &str, any_port: bool) -> Result<Self, PasskeyError> {
        let url = Url::parse(origin).map_err(|e| PasskeyError::Config(e.to_string()))?;
        // Checked here rather than left to webauthn-rs, which logs an ERROR of its own for
        // an IP address before refusing it.
        let rp_id = url
            .host_str()
            .ok_or_else(|| PasskeyError::Config("the public URL has no host".into()))?
            .to_owned();
        if rp_id.starts_with('[') || rp_id.parse::<std::net::IpAddr>().is_ok() {
            return Err(PasskeyError::Config(format!(
                "the public URL's host {rp_id} is an IP address; browsers offer passkeys only \
                 on a host name (set public_url, e.g. http://localhost:8080)"
            )));
        }
        let webauthn = WebauthnBuilder::new(&rp_id, &url)
            .map_err(|e| PasskeyError::Config(e.to_string()))?
            .rp_name(rp_name)
            .allow_any_port(any_port)
            .build()
            .map_err(|e| PasskeyError::Config(e.to_string()))?;
        Ok(Self { webauthn })
    }

    /// Starts registering a passkey for the user with handle `user` (16 opaque bytes),
    /// excluding the credentials the account already has.
    pub fn start_registration(
        &self,
        user: [u8; 16],
        user_name: &str,
        existing: &[String],
    ) -> Result<Started, PasskeyError> {
        let exclude: Vec<CredentialID> = existing
            .iter()
            .filter_map(|json| serde_json::from_str::<Passkey>(json).ok())
            .map(|p| p.cred_id().clone())
            .collect();
        let (options, reg) = self
            .webauthn
            .start_passkey_registration(
                Uuid::from_bytes(user),
                user_name,
                user_name,
                (!exclude.is_empty()).then_some(exclude),
            )
            .map_err(rejected)?;
        // Ask for a discoverable credential (a passkey proper), so it can also sign in without
        // a User ID typed; `webauthn-rs` leaves this to the caller.
        let mut options = serde_json::to_value(&options).map_err(state)?;
        if let Some(selection) = options
            .get_mut("publicKey")
            .and_then(|p| p.get_mut("authenticatorSelection"))
            .and_then(|s| s.as_object_mut())
        {
            selection.insert("residentKey".into(), "required".into());
            selection.insert("requireResidentKey".into(), true.into());
        }
        Ok(Started {
            options_json: options.to_string(),
            state_json: serde_json::to_string(&reg).map_err(state)?,
        })
    }

    pub fn finish_registration(
        &self,
        response_json: &str,
        state_json: &str,
    ) -> Result<Registered, PasskeyError> {
        let response: RegisterPublicKeyCredential =
            serde_json::from_str(response_json).map_err(rejected)?;
        let reg: PasskeyRegistration = serde_json::from_str(state_json).map_err(state)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&response, &reg)
            .map_err(rejected)?;
        Ok(Registered {
            credential_id: b64url(passkey.cred_id()),
            passkey_json: serde_json::to_string(&passkey).map_err(state)?,
        })
    }

    /// Starts an assertion by one of `passkeys` (a second step).
    pub fn start_authentication(&self, passkeys: &[String]) -> Result<Started, PasskeyError> {
        let passkeys: Vec<Passkey> = passkeys
            .iter()
            .map(|json| serde_json::from_str(json).map_err(state))
            .collect::<Result<_, _>>()?;
        let (options, auth) = self
            .webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(rejected)?;
        Ok(Started {
            options_json: serde_json::to_string(&options).map_err(state)?,
            state_json: serde_json::to_string(&auth).map_err(state)?,
        })
    }

    pub fn finish_authentication(
        &self,
        response_json: &str,
        state_json: &str,
        passkey_json: &str,
    ) -> Result<Verified, PasskeyError> {
        let response: PublicKeyCredential =
            serde_json::from_str(response_json).map_err(rejected)?;
        let auth: PasskeyAuthentication = serde_json::from_str(state_json).map_err(state)?;
        let result = self
            .webauthn
            .finish_passkey_authentication(&response, &auth)
            .map_err(rejected)?;
        let mut passkey: Passkey = serde_json::from_str(passkey_json).map_err(state)?;
        if passkey.cred_id() != result.cred_id() {
            return Err(PasskeyError::Rejected("another credential".into()));
        }
        Ok(Verified {
            credential_id: b64url(result.cred_id()),
            updated_passkey_json: match passkey.update_credential(&result) {
                Some(true) => Some(serde_json::to_string(&passkey).map_err(state)?),
                _ => None,
            },
        })
    }

    /// Starts a passwordless sign-in: any of this site's discoverable passkeys.
    pub fn start_discoverable(&self) -> Result<Started, PasskeyError> {
        let (options, auth) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(rejected)?;
        Ok(Started {
            options_json: serde_json::to_string(&options).map_err(state)?,
            state_json: serde_json::to_string(&auth).map_err(state)?,
        })
    }

    /// The credential ID (base64url) and user handle a discoverable assertion names, before it
    /// is verified (to find the stored credential).
    pub fn identify(&self, response_json: &str) -> Result<(String, [u8; 16]), PasskeyError> {
        use base64::Engine;
        let response: PublicKeyCredential =
            serde_json::from_str(response_json).map_err(rejected)?;
        let (user, cred_id) = self
            .webauthn
            .identify_discoverable_authentication(&response)
            .map_err(rejected)?;
        Ok((
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cred_id),
            *user.as_bytes(),
        ))
    }

    pub fn finish_discoverable(
        &self,
        response_json: &str,
        state_json: &str,
        passkey_json: &str,
    ) -> Result<Verified, PasskeyError> {
        let response: PublicKeyCredential =
            serde_json::from_str(response_json).map_err(rejected)?;
        let auth: DiscoverableAuthentication = serde_json::from_str(state_json).map_err(state)?;
        let mut passkey: Passkey = serde_json::from_str(passkey_json).map_err(state)?;
        let key = DiscoverableKey::from(&passkey);
        let result = self
            .webauthn
            .finish_discoverable_authentication(&response, auth, &[key])
            .map_err(rejected)?;
        Ok(Verified {
            credential_id: b64url(result.cred_id()),
            updated_passkey_json: match passkey.update_credential(&result) {
                Some(true) => Some(serde_json::to_string(&passkey).map_err(state)?),
                _ => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_name_the_relying_party_and_user() {
        let rp = PasskeyRp::new("http://localhost:8080", "Portcullis Bank", true).unwrap();
        let started = rp.start_registration([7; 16], "ann.example", &[]).unwrap();
        let options: serde_json::Value = serde_json::from_str(&started.options_json).unwrap();
        assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
        assert_eq!(options["publicKey"]["user"]["name"], "ann.example");
        assert_eq!(
            options["publicKey"]["authenticatorSelection"]["residentKey"],
            "required"
        );
        // A garbage answer is refused, not a panic.
        assert!(rp.finish_registration("{}", &started.state_json).is_err());
        assert!(rp.identify("not json").is_err());
        assert!(PasskeyRp::new("not a url", "x", false).is_err());
    }

    #[test]
    fn an_ip_address_is_refused_with_the_reason() {
        for origin in [
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
            "https://10.0.0.1",
        ] {
            let err = PasskeyRp::new(origin, "x", true).unwrap_err().to_string();
            assert!(err.contains("is an IP address"), "{origin}: {err}");
        }
    }
}
