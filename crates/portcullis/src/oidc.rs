//! `portcullis oidc …`: registering, listing and revoking relying parties, and rotating
//! the ID-token signing keys. `list` and `revoke` act as the operator (`cli:<user>`), the
//! same as `/api/v1/admin/oidc/clients` with a `clients:write` token.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use portcullis_core::clock::SystemClock;
use portcullis_core::oidc::{ClientAuth, IdTokenAlg};
use portcullis_core::ports::OidcClientRow;
use portcullis_core::service::oidc::{ClientRegistration, SIGNING_RING};
use portcullis_core::service::{Portcullis, SupportAuthority};
use portcullis_crypto::keyring::{activate_ring, prepare_ring, rotate_ring, ActivateError};
use secrecy::ExposeSecret;

use crate::admin::{cli_actor, refused};
use crate::app;
use crate::config::Config;

#[derive(Subcommand)]
pub enum OidcCommand {
    /// Relying parties.
    Client {
        #[command(subcommand)]
        command: OidcClientCommand,
    },
    /// ID-token signing keys.
    Keys {
        #[command(subcommand)]
        command: OidcKeysCommand,
    },
}

#[derive(Subcommand)]
pub enum OidcClientCommand {
    /// Register a relying party; prints one JSON line {"client_id", "client_secret"?}.
    Add {
        #[arg(long)]
        name: String,
        /// An exact redirect URI (repeat for more).
        #[arg(long = "redirect-uri", value_name = "URI", num_args = 1.., required = true)]
        redirect_uri: Vec<String>,
        /// An exact post-logout redirect URI (repeat for more).
        #[arg(long = "post-logout-redirect-uri", value_name = "URI", num_args = 1..)]
        post_logout_redirect_uri: Vec<String>,
        /// A public client (the mobile app): no secret, PKCE and DPoP.
        #[arg(long)]
        public: bool,
        /// client_secret_basic (the default) or private_key_jwt.
        #[arg(long)]
        auth: Option<String>,
        /// The client's public keys (a JWKS document) for private_key_jwt.
        #[arg(long = "jwks-file", value_name = "FILE", conflicts_with = "jwks_uri")]
        jwks_file: Option<PathBuf>,
        /// Where the client publishes its public keys (https), for private_key_jwt:
        /// fetched at its first assertion and cached (the oidc.jwks_* keys).
        #[arg(long = "jwks-uri", value_name = "URL")]
        jwks_uri: Option<String>,
        /// Skip the consent screen.
        #[arg(long = "first-party")]
        first_party: bool,
        /// fapi2: PAR, PKCE S256, DPoP and private_key_jwt required.
        #[arg(long)]
        profile: Option<String>,
        /// How its ID tokens are signed: ES256 (the default) or EdDSA.
        #[arg(long = "id-token-alg", value_name = "ALG")]
        id_token_alg: Option<String>,
    },
    /// One JSON line per client (revoked ones too), never a secret.
    List,
    /// Revoke a client: every token issued to it stops working at once.
    Revoke {
        #[arg(value_name = "CLIENT_ID")]
        client_id: String,
    },
}

#[derive(Subcommand)]
pub enum OidcKeysCommand {
    /// A new current signing key; the previous one stays in the JWKS.
    Rotate {
        /// Publish the new key in the JWKS without signing with it yet.
        #[arg(long, conflicts_with = "activate")]
        prepare: bool,
        /// Sign with the key published by --prepare from now on.
        #[arg(long)]
        activate: bool,
    },
}

/// Runs `portcullis oidc …`.
pub async fn run(config: &Config, command: &OidcCommand) -> anyhow::Result<ExitCode> {
    let command = match command {
        OidcCommand::Keys {
            command: OidcKeysCommand::Rotate { prepare, activate },
        } => {
            let how = match (prepare, activate) {
                (true, _) => Rotation::Prepare,
                (_, true) => Rotation::Activate,
                _ => Rotation::Now,
            };
            return keys_rotate(config, how);
        }
        OidcCommand::Client { command } => command,
    };
    let built = app::build(config, Arc::new(SystemClock), false).await?;
    let operator = SupportAuthority::operator(&cli_actor());
    match command {
        OidcClientCommand::Add {
            name,
            redirect_uri,
            post_logout_redirect_uri,
            public,
            auth,
            jwks_file,
            jwks_uri,
            first_party,
            profile,
            id_token_alg,
        } => {
            client_add(
                &built.app,
                ClientAdd {
                    name: name.clone(),
                    redirect_uris: redirect_uri.clone(),
                    post_logout_uris: post_logout_redirect_uri.clone(),
                    public: *public,
                    auth: auth.clone(),
                    jwks_file: jwks_file.clone(),
                    jwks_uri: jwks_uri.clone(),
                    first_party: *first_party,
                    profile: profile.clone(),
                    id_token_alg: id_token_alg.clone(),
                },
            )
            .await
        }
        OidcClientCommand::List => {
            for row in built.app.oidc_clients_list(&operator).await? {
                println!("{}", describe(&row));
            }
            Ok(ExitCode::SUCCESS)
        }
        OidcClientCommand::Revoke { client_id } => {
            match built.app.oidc_client_revoke(&operator, client_id).await {
                Ok(true) => {
                    println!("client {client_id} revoked; every token issued to it is revoked");
                    Ok(ExitCode::SUCCESS)
                }
                Ok(false) => {
                    eprintln!("error: no client has the id {client_id:?}");
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => refused(e),
            }
        }
    }
}

/// A client as `oidc client list` shows it (one JSON line; never a secret).
pub fn describe(row: &OidcClientRow) -> serde_json::Value {
    let c = &row.client;
    serde_json::json!({
        "client_id": c.client_id,
        "name": c.name,
        "token_endpoint_auth_method": c.auth.as_str(),
        // Where a private_key_jwt client's keys come from: "file" (registered) or "uri".
        "jwks": match (&c.jwks, &c.jwks_uri) {
            (_, Some(_)) => Some("uri"),
            (Some(_), None) => Some("file"),
            (None, None) => None,
        },
        "jwks_uri": c.jwks_uri,
        "redirect_uris": c.redirect_uris,
        "post_logout_redirect_uris": c.post_logout_uris,
        "first_party": c.first_party,
        "profile": c.fapi2.then_some("fapi2"),
        "id_token_signed_response_alg": c.id_token_alg.as_str(),
        "created_at": row.created_at.to_rfc3339(),
        "revoked_at": row.revoked_at.map(|t| t.to_rfc3339()),
    })
}

/// What `oidc client add` was given.
pub struct ClientAdd {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_uris: Vec<String>,
    pub public: bool,
    pub auth: Option<String>,
    pub jwks_file: Option<PathBuf>,
    pub jwks_uri: Option<String>,
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
        jwks_uri: args.jwks_uri,
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
