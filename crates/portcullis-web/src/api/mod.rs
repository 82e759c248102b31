//! The JSON API under `/api/v1`, with its OpenAPI 3.1 document generated from the same
//! handlers (utoipa), so the document cannot drift from the code.

pub mod admin;
pub mod extract;
pub mod factors;
pub mod health;
pub mod me;
pub mod oidc_clients;
pub mod oidc_grants;
pub mod recovery;
pub mod registration;
pub mod registry;
pub mod sessions;
pub mod status;
pub mod webhooks;

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::admin::AdminBearerAuth;
use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portcullis API",
        description = "Online-account access for card issuers: registration, sign-in, sessions, \
                       the account summary. Errors are application/problem+json (RFC 9457). \
                       Any operation may also answer 413 (`body-too-large`: the body is larger \
                       than server.body_limit_bytes, 1 MiB by default), 408 (`body-too-slow`: \
                       the body arrived more slowly than the service accepts; the connection is \
                       closed) or 503 with Retry-After (`unavailable`: the node is at its limit \
                       of requests in flight, the answer passed the request deadline, or the \
                       database cannot take the request; nothing was changed).",
        version = "1"
    ),
    servers((url = "/api/v1")),
    modifiers(&BearerAuth, &AdminBearerAuth),
    components(schemas(crate::error::Problem, crate::error::FieldErrorDoc))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The API routes (relative to `/api/v1`) and their OpenAPI document.
pub fn router() -> (Router<AppState>, OpenApiDoc) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(registration::security_questions))
        .routes(routes!(registration::verify_card))
        .routes(routes!(registration::complete))
        .routes(routes!(sessions::create_session))
        .routes(routes!(sessions::delete_current))
        .routes(routes!(sessions::mfa_send))
        .routes(routes!(sessions::mfa_verify))
        .routes(routes!(factors::reauthenticate))
        .routes(routes!(factors::list_factors))
        .routes(routes!(factors::begin_totp))
        .routes(routes!(factors::confirm_totp))
        .routes(routes!(factors::enable_code_factor))
        .routes(routes!(factors::remove_factor))
        .routes(routes!(factors::recovery_codes))
        .routes(routes!(factors::untrust_device))
        .routes(routes!(factors::not_me))
        .routes(routes!(factors::passkey_options))
        .routes(routes!(factors::add_passkey))
        .routes(routes!(factors::rename_factor))
        .routes(routes!(sessions::mfa_passkey_options))
        .routes(routes!(sessions::passkey_options))
        .routes(routes!(sessions::passkey_sign_in))
        .routes(routes!(me::me))
        .routes(routes!(me::list_sessions, me::end_other_sessions))
        .routes(routes!(me::delete_session))
        .routes(routes!(oidc_grants::list_grants))
        .routes(routes!(oidc_grants::revoke_grant))
        .routes(routes!(me::change_password))
        .routes(routes!(me::set_security_answers))
        .routes(routes!(me::start_contact_change))
        .routes(routes!(me::confirm_contact_change))
        .routes(routes!(me::resend_contact_code))
        .routes(routes!(me::link_card))
        .routes(routes!(me::unlink_card))
        .routes(routes!(recovery::password_start))
        .routes(routes!(recovery::password_verify))
        .routes(routes!(recovery::password_resend))
        .routes(routes!(recovery::password_reset))
        .routes(routes!(recovery::user_id_start))
        .routes(routes!(recovery::user_id_verify))
        .routes(routes!(recovery::user_id_resend))
        .routes(routes!(recovery::card_start))
        .routes(routes!(recovery::card_verify))
        .routes(routes!(admin::show_account))
        .routes(routes!(admin::unlock_account))
        .routes(routes!(admin::clear_card))
        .routes(routes!(admin::reactivate_account))
        .routes(routes!(admin::account_audit))
        .routes(routes!(admin::audit_entries))
        .routes(routes!(admin::verify_audit))
        .routes(routes!(registry::push_records))
        .routes(routes!(webhooks::list_webhooks, webhooks::add_webhook))
        .routes(routes!(webhooks::remove_webhook))
        .routes(routes!(
            oidc_clients::list_clients,
            oidc_clients::add_client
        ))
        .routes(routes!(
            oidc_clients::show_client,
            oidc_clients::revoke_client
        ))
        .routes(routes!(status::status))
        .routes(routes!(status::create_incident))
        .routes(routes!(status::update_incident))
        .fallback(|| async { crate::error::ApiError::not_found() })
        .split_for_parts()
}
