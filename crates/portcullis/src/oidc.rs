//! `portcullis oidc …`: registering, listing and revoking relying parties, and rotating
//! the ID-token signing keys. `list` and `revoke` act as the operator (`cli:<user>`), the
//! same as `/api/v1/admin/oidc/clients` with a `clients:write` token.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use portcullis_core::clock::SystemClock;
use portcullis_core::oidc::ClientAuth;
use portcullis_core::ports::OidcClientRow;
use portcullis_core::service::oidc::{ClientRegistration, SIGNING_RING};
use portcullis_core::service::{Portcullis, SupportAuthority};
use portcullis_crypto::keyring::rotate_ring;
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
        #[arg(long = "jwks-file", value_name = "FILE")]
        jwks_file: Option<PathBuf>,
        /// Skip the consent screen.
        #[arg(long = "first-party")]
        first_party: bool,
        /// fapi2: PAR, PKCE S256, DPoP and private_key_jwt required.
        #[arg(long)]
        profile: Option<String>,
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
    Rotate,
}

/// Runs `portcullis oidc …`.
pub async fn run(config: &Config, command: &OidcCommand) -> anyhow::Result<ExitCode> {
    let command = match command {
        OidcCommand::Keys {
            command: OidcKeysCommand::Rotate,
        } => return keys_rotate(config),
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
            first_party,
            profile,
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
                    first_party: *first_party,
                    profile: profile.clone(),
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
        "redirect_uris": c.redirect_uris,
        "post_logout_redirect_uris": c.post_logout_uris,
        "first_party": c.first_party,
        "profile": c.fapi2.then_some("fapi2"),
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
    pub first_party: bool,
    pub profile: Option<String>,
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

/// `portcullis oidc keys rotate`: a new current signing key; the previous one stays
/// published in the JWKS so ID tokens it signed still verify until they expire.
pub fn keys_rotate(config: &Config) -> anyhow::Result<ExitCode> {
    let ring = rotate_ring(&config.secrets_dir, SIGNING_RING).with_context(|| {
        format!(
            "rotating {SIGNING_RING} in {}",
            config.secrets_dir.display()
        )
    })?;
    println!(
        "{SIGNING_RING}: key {} signs ID tokens now; the previous key stays in the JWKS. \
         Running nodes pick it up within a second.",
        ring.current_id()
    );
    Ok(ExitCode::SUCCESS)
}
