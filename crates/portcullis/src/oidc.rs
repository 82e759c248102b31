//! `portcullis oidc …`: registering relying parties and rotating the ID-token signing keys.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use portcullis_core::oidc::{ClientAuth, IdTokenAlg};
use portcullis_core::service::oidc::{ClientRegistration, SIGNING_RING};
use portcullis_core::service::Portcullis;
use portcullis_crypto::keyring::{activate_ring, prepare_ring, rotate_ring, ActivateError};
use secrecy::ExposeSecret;

use crate::config::Config;

/// What `oidc client add` was given.
pub struct ClientAdd {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_uris: Vec<String>,
    pub public: bool,
    pub auth: Option<String>,
    pub jwks_file: Option<PathBuf>,
    pub first_party: bool,
    pub profile: Option<String>,
    pub id_token_alg: Option<String>,
}

/// `portcullis oidc client add …`: prints one JSON line `{"client_id", "client_secret"?}`.
pub async fn client_add(app: &Portcullis, args: ClientAdd) -> anyhow::Result<ExitCode> {
    let refuse = |why: String| {
        eprintln!("error: {why}");
        Ok(ExitCode::FAILURE)
    };
    let auth = match (args.public, args.auth.as_deref()) {
        (true, None) => ClientAuth::None,
        (true, Some(_)) => return refuse("--public clients have no --auth".into()),
        (false, None) => ClientAuth::SecretBasic,
        (false, Some(a)) => match ClientAuth::parse(a) {
            Some(ClientAuth::None) | None => {
                return refuse(format!(
                    "--auth must be client_secret_basic or private_key_jwt, not {a:?}"
                ))
            }
            Some(auth) => auth,
        },
    };
    let fapi2 = match args.profile.as_deref() {
        None => false,
        Some("fapi2") => true,
        Some(p) => return refuse(format!("--profile must be fapi2, not {p:?}")),
    };
    let id_token_alg = match args.id_token_alg.as_deref() {
        None => IdTokenAlg::Es256,
        Some(a) => match IdTokenAlg::parse(a) {
            Some(alg) => alg,
            None => return refuse(format!("--id-token-alg must be ES256 or EdDSA, not {a:?}")),
        },
    };
    let jwks = match &args.jwks_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(v) => Some(v),
                Err(e) => return refuse(format!("{} is not JSON: {e}", path.display())),
            }
        }
    };
    let registration = ClientRegistration {
        name: args.name,
        redirect_uris: args.redirect_uris,
        post_logout_uris: args.post_logout_uris,
        auth,
        jwks,
        first_party: args.first_party,
        fapi2,
        id_token_alg,
    };
    match app.register_oidc_client(registration).await {
        Ok(client) => {
            let mut line = serde_json::json!({ "client_id": client.client_id });
            if let (Some(secret), serde_json::Value::Object(m)) = (&client.client_secret, &mut line)
            {
                m.insert(
                    "client_secret".into(),
                    serde_json::Value::String(secret.expose_secret().to_owned()),
                );
            }
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => refuse(why),
    }
}

/// What `oidc keys rotate` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// A new key, current at once (the previous one stays published).
    Now,
    /// A new key published in the JWKS but not signing yet.
    Prepare,
    /// The prepared key signs from now on.
    Activate,
}

/// `portcullis oidc keys rotate [--prepare | --activate]`: the previous key stays published
/// in the JWKS so ID tokens it signed still verify until they expire; a prepared key is
/// published before it signs, so relying parties that cache the JWKS have it in time.
pub fn keys_rotate(config: &Config, how: Rotation) -> anyhow::Result<ExitCode> {
    let dir = &config.secrets_dir;
    let context = || format!("rotating {SIGNING_RING} in {}", dir.display());
    match how {
        Rotation::Now => {
            let ring = rotate_ring(dir, SIGNING_RING).with_context(context)?;
            println!(
                "{SIGNING_RING}: key {} signs ID tokens now; the previous key stays in the \
                 JWKS. Running nodes pick it up within a second.",
                ring.current_id()
            );
        }
        Rotation::Prepare => {
            let ring = prepare_ring(dir, SIGNING_RING).with_context(context)?;
            println!(
                "{SIGNING_RING}: key {} is published in the JWKS and signs nothing yet; key {} \
                 still signs. Run `oidc keys rotate --activate` once relying parties have \
                 refreshed their copy of the JWKS.",
                ring.next_id().unwrap_or_default(),
                ring.current_id()
            );
        }
        Rotation::Activate => match activate_ring(dir, SIGNING_RING) {
            Ok(ring) => println!(
                "{SIGNING_RING}: key {} signs ID tokens now; the previous key stays in the \
                 JWKS. Running nodes pick it up within a second.",
                ring.current_id()
            ),
            Err(e @ ActivateError::NothingPrepared) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::FAILURE);
            }
            Err(e) => return Err(anyhow::Error::new(e).context(context())),
        },
    }
    Ok(ExitCode::SUCCESS)
}
