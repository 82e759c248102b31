//! `/api/v1/admin/oidc/clients`: the OpenID Connect relying parties (docs/design/oidc.md),
//! with an admin token carrying `clients:write`: register (the checks of `portcullis oidc
//! client add`; a secret shown once), list and show (never a secret), revoke (every token
//! issued to the client stops working at once).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::oidc::{ClientAuth, IdTokenAlg};
use portcullis_core::ports::OidcClientRow;
use portcullis_core::service::oidc::ClientRegistration;
use portcullis_core::service::SupportScope;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::{Admin, Scope};
use super::extract::ApiJson;
use crate::error::{ApiError, Problem};
use crate::AppState;

/// `clients:write`: list, register and revoke OpenID Connect clients.
pub struct ClientsWrite;

impl Scope for ClientsWrite {
    const SCOPE: SupportScope = SupportScope::ClientsWrite;
}

#[derive(Serialize, ToSchema)]
pub struct OidcClientOut {
    pub client_id: String,
    pub name: String,
    /// `client_secret_basic`, `private_key_jwt` or `none` (a public client).
    pub token_endpoint_auth_method: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// First-party clients skip the consent screen.
    pub first_party: bool,
    /// `fapi2`, or absent.
    pub profile: Option<String>,
    /// How its ID tokens are signed: `ES256` or `EdDSA`.
    pub id_token_signed_response_alg: String,
    /// Where a `private_key_jwt` client's keys come from: `file` (a JWKS document given at
    /// registration) or `uri` (fetched from `jwks_uri` and cached); absent otherwise.
    pub jwks: Option<String>,
    /// The URL its keys are fetched from, when `jwks` is `uri`.
    pub jwks_uri: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; absent while the client is active.
    pub revoked_at: Option<String>,
}

impl From<OidcClientRow> for OidcClientOut {
    fn from(r: OidcClientRow) -> Self {
        Self {
            token_endpoint_auth_method: r.client.auth.as_str().to_owned(),
            client_id: r.client.client_id,
            name: r.client.name,
            redirect_uris: r.client.redirect_uris,
            post_logout_redirect_uris: r.client.post_logout_uris,
            first_party: r.client.first_party,
            profile: r.client.fapi2.then(|| "fapi2".to_owned()),
            id_token_signed_response_alg: r.client.id_token_alg.as_str().to_owned(),
            jwks: match (&r.client.jwks, &r.client.jwks_uri) {
                (_, Some(_)) => Some("uri".to_owned()),
                (Some(_), None) => Some("file".to_owned()),
                (None, None) => None,
            },
            jwks_uri: r.client.jwks_uri,
            created_at: r.created_at.to_rfc3339(),
            revoked_at: r.revoked_at.map(|t| t.to_rfc3339()),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcClientIn {
    /// 1 to 200 characters.
    pub name: String,
    /// Exact redirect URIs: `https://…`, or for a public client a loopback `http://` or a
    /// private-use scheme (RFC 8252). No fragment, no user information.
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// `client_secret_basic` (the default), `private_key_jwt` (with `jwks` or `jwks_uri`) or `none` (a
    /// public client: PKCE, DPoP recommended).
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    /// The client's public keys (a JWKS document with an EC P-256 key), for
    /// `private_key_jwt`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// Instead of `jwks`: the `https` URL where the client publishes its JWKS, fetched at
    /// its first assertion and cached (`oidc.jwks_*`). A private, link-local or reserved
    /// address is refused; `http` only to a loopback IP address, with
    /// `oidc.jwks_allow_http_loopback`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub first_party: bool,
    /// `fapi2`: PAR, PKCE S256, DPoP and `private_key_jwt` required.
    #[serde(default)]
    pub profile: Option<String>,
    /// How its ID tokens are signed: `ES256` (the default) or `EdDSA`.
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OidcClientCreated {
    pub client_id: String,
    /// For `client_secret_basic` only: the secret, shown this once (kept as a keyed hash).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// List OpenID Connect clients, revoked ones included (scope `clients:write`); never a
/// secret.
#[utoipa::path(get, path = "/admin/oidc/clients", tag = "admin",
    security(("admin_bearer" = [])),
    responses(
        (status = 200, body = Vec<OidcClientOut>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks clients:write", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_clients(
    State(state): State<AppState>,
    admin: Admin<ClientsWrite>,
) -> Result<Json<Vec<OidcClientOut>>, ApiError> {
    let list = state.app.oidc_clients_list(admin.authority()).await?;
    Ok(Json(list.into_iter().map(OidcClientOut::from).collect()))
}

/// Register an OpenID Connect client (scope `clients:write`), with the checks of
/// `portcullis oidc client add`. A `client_secret_basic` client's secret is in this answer
/// only.
#[utoipa::path(post, path = "/admin/oidc/clients", tag = "admin",
    security(("admin_bearer" = [])),
    request_body = OidcClientIn,
    responses(
        (status = 201, body = OidcClientCreated),
        (status = 400, description = "A redirect URI that is not exact https (or, for a public client, loopback or a private-use scheme), fapi2 without private_key_jwt, private_key_jwt without a usable JWKS, or with both jwks and jwks_uri, or a jwks_uri that is not https to a public host", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks clients:write", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn add_client(
    State(state): State<AppState>,
    admin: Admin<ClientsWrite>,
    ApiJson(body): ApiJson<OidcClientIn>,
) -> Result<(StatusCode, Json<OidcClientCreated>), ApiError> {
    let invalid = |field: &str, why: &str| {
        ApiError::from(portcullis_core::ServiceError::field(field, why.to_owned()))
    };
    let auth = match body.token_endpoint_auth_method.as_deref() {
        None => ClientAuth::SecretBasic,
        Some(m) => ClientAuth::parse(m).ok_or_else(|| {
            invalid(
                "token_endpoint_auth_method",
                "Use client_secret_basic, private_key_jwt or none.",
            )
        })?,
    };
    let fapi2 = match body.profile.as_deref() {
        None | Some("") => false,
        Some("fapi2") => true,
        Some(_) => return Err(invalid("profile", "Use fapi2, or leave it out.")),
    };
    let id_token_alg = match body.id_token_signed_response_alg.as_deref() {
        None => IdTokenAlg::Es256,
        Some(a) => IdTokenAlg::parse(a).ok_or_else(|| {
            invalid(
                "id_token_signed_response_alg",
                "Use ES256 or EdDSA, or leave it out.",
            )
        })?,
    };
    let registration = ClientRegistration {
        name: body.name,
        redirect_uris: body.redirect_uris,
        post_logout_uris: body.post_logout_redirect_uris,
        auth,
        jwks: body.jwks,
        jwks_uri: body.jwks_uri,
        first_party: body.first_party,
        fapi2,
        id_token_alg,
    };
    let added = state
        .app
        .oidc_client_register(admin.authority(), registration)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(OidcClientCreated {
            client_id: added.client_id,
            client_secret: added.client_secret.map(|s| s.expose_secret().to_owned()),
        }),
    ))
}

/// One OpenID Connect client, revoked or not (scope `clients:write`).
#[utoipa::path(get, path = "/admin/oidc/clients/{client_id}", tag = "admin",
    security(("admin_bearer" = [])),
    params(("client_id" = String, Path, description = "The client's id")),
    responses(
        (status = 200, body = OidcClientOut),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks clients:write", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_client(
    State(state): State<AppState>,
    admin: Admin<ClientsWrite>,
    Path(client_id): Path<String>,
) -> Result<Json<OidcClientOut>, ApiError> {
    match state
        .app
        .oidc_client_show(admin.authority(), &client_id)
        .await?
    {
        Some(row) => Ok(Json(row.into())),
        None => Err(ApiError::not_found_because(
            "No OpenID Connect client has this id.",
        )),
    }
}

/// Revoke an OpenID Connect client (scope `clients:write`): its tokens stop working at once
/// (introspection inactive, userinfo and refresh refused) and it can start no new
/// authorization. Revoking a revoked client changes nothing.
#[utoipa::path(delete, path = "/admin/oidc/clients/{client_id}", tag = "admin",
    security(("admin_bearer" = [])),
    params(("client_id" = String, Path, description = "The client's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks clients:write", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_client(
    State(state): State<AppState>,
    admin: Admin<ClientsWrite>,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state
        .app
        .oidc_client_revoke(admin.authority(), &client_id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found_because(
            "No OpenID Connect client has this id.",
        ))
    }
}
