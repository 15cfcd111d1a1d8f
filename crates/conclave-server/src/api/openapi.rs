//! `GET /openapi.json`: the API description, generated from the handlers' annotations.

use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(title = "Conclave REST API", description = "OpenTok-compatible REST API of Conclave, plus Conclave extensions."),
    paths(super::sessions::create, super::sessions::get),
    components(schemas(conclave_core::wire::ErrorBody, conclave_core::wire::SessionCreated, conclave_core::wire::SessionInfo)),
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
    }
}

pub async fn serve() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
