//! `GET /openapi.json`: the API description, generated from the handlers' annotations.

use utoipa::OpenApi;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Conclave REST API", description = "OpenTok-compatible REST API of Conclave, plus Conclave extensions. Vonage Video applications call the same paths with their application ID in place of the API key and an RS256 `Authorization: Bearer` credential (docs/vonage.md). Broadcasts, SIP dial and DTMF, the Audio Connector, live captions and Experience Composer are not served: their paths answer 501 with a JSON message."),
    paths(
        super::sessions::create,
        super::sessions::get,
        super::moderation::end_session,
        super::moderation::list_connections,
        super::moderation::force_disconnect,
        super::moderation::signal_connection,
        super::moderation::signal_session,
        super::moderation::mute_all,
        super::moderation::mute_stream,
        super::moderation::list_streams,
        super::moderation::get_stream,
        super::moderation::set_class_lists,
        super::archives::start,
        super::archives::stop,
        super::archives::get,
        super::archives::list,
        super::archives::delete,
        super::archives::patch_streams,
        super::archives::set_layout,
        super::broadcasts::start,
        super::broadcasts::get,
        super::broadcasts::list,
        super::broadcasts::stop,
        super::broadcasts::set_layout,
        super::broadcasts::patch_streams,
        super::broadcasts::connect,
        super::broadcasts::disconnect,
        super::archives::set_storage,
        super::archives::delete_storage,
        super::archives::set_encryption,
        super::archives::delete_encryption,
        super::archives::download,
        super::callbacks::register,
        super::callbacks::list,
        super::callbacks::remove,
        health,
        ready,
        signal_socket,
    ),
    components(schemas(conclave_core::archive::ArchiveJson, conclave_core::archive::ArchiveList, conclave_core::broadcast::BroadcastJson, conclave_core::broadcast::BroadcastList, conclave_core::broadcast::ConnectJson, conclave_core::wire::ErrorBody, conclave_core::wire::SessionCreated, conclave_core::wire::SessionInfo)),
    modifiers(&AuthScheme)
)]
pub struct ApiDoc;

struct AuthScheme;

impl utoipa::Modify for AuthScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "opentok_auth",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-OPENTOK-AUTH",
                "HS256 JWT signed with the project secret: iss=API key, ist=project, exp-iat <= 300 s, no scope/session_id",
            ))),
        );
        components.add_security_scheme(
            "vonage_application",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "RS256 JWT signed with a Vonage application's private key: application_id, iat, exp (exp-iat <= 900 s), jti; no scope/session_id. The path's {apiKey} is the application ID.",
                    ))
                    .build(),
            ),
        );
        // Every operation that takes a project's credential takes an application's instead.
        for item in openapi.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in ops.into_iter().flatten() {
                if let Some(security) = op.security.as_mut().filter(|s| !s.is_empty()) {
                    security.push(SecurityRequirement::new("vonage_application", Vec::<String>::new()));
                }
            }
        }
    }
}

/// Liveness: 200 while the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "{\"status\": \"ok\"}")))]
#[allow(dead_code)]
fn health() {}

/// Readiness: 200 when the store answers and the server is not draining, else 503.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "{\"status\": \"ready\"}"),
    (status = 503, description = "Draining or store unreachable", body = conclave_core::wire::ErrorBody),
))]
#[allow(dead_code)]
fn ready() {}

/// The signaling WebSocket (protocol in docs/protocol.md); session ID and token go in the
/// first message, never in the URL.
#[utoipa::path(get, path = "/v1/signal", tag = "signaling", responses(
    (status = 101, description = "Switching to the WebSocket protocol"),
    (status = 429, description = "Too many connects from this address", body = conclave_core::wire::ErrorBody),
))]
#[allow(dead_code)]
fn signal_socket() {}

pub async fn serve() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
