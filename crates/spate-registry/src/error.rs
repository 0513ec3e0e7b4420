//! The registry's errors: each carries the HTTP status and the `error_code` Confluent Schema
//! Registry answers with, and becomes its JSON error body `{"error_code":..,"message":..}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answered to a REST client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (error code {code})")]
pub struct RegistryError {
    /// HTTP status.
    pub status: StatusCode,
    /// Confluent's error code: the status for generic errors, five digits for specific ones.
    pub code: u32,
    /// What went wrong.
    pub message: String,
}

impl RegistryError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> RegistryError {
        RegistryError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 40401.
    pub fn subject_not_found(subject: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40401,
            format!("Subject '{subject}' not found."),
        )
    }

    /// 40402; `latest` is version -1, as Confluent prints it.
    pub fn version_not_found(version: i32) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40402,
            format!("Version {version} not found."),
        )
    }

    /// 40403 for a schema looked up by its text (`POST /subjects/{subject}`).
    pub fn schema_not_found() -> RegistryError {
        RegistryError::new(StatusCode::NOT_FOUND, 40403, "Schema not found")
    }

    /// 40403 for a schema looked up by id.
    pub fn schema_id_not_found(id: i32) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40403,
            format!("Schema {id} not found"),
        )
    }

    /// 40404.
    pub fn subject_soft_deleted(subject: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40404,
            format!(
                "Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"
            ),
        )
    }

    /// 40405.
    pub fn subject_not_soft_deleted(subject: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40405,
            format!("Subject '{subject}' was not deleted first before being permanently deleted"),
        )
    }

    /// 40406.
    pub fn version_soft_deleted(subject: &str, version: i32) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40406,
            format!(
                "Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently"
            ),
        )
    }

    /// 40407.
    pub fn version_not_soft_deleted(subject: &str, version: i32) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40407,
            format!(
                "Subject '{subject}' Version {version} was not deleted first before being permanently deleted"
            ),
        )
    }

    /// 40408.
    pub fn subject_config_not_found(subject: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )
    }

    /// 40409.
    pub fn subject_mode_not_found(subject: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            40409,
            format!("Subject '{subject}' does not have subject-level mode configured"),
        )
    }

    /// 409: the schema breaks the subject's compatibility level.
    pub fn incompatible(subject: &str, messages: &[String]) -> RegistryError {
        RegistryError::new(
            StatusCode::CONFLICT,
            409,
            format!(
                "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                messages.join(", ")
            ),
        )
    }

    /// 42201.
    pub fn invalid_schema(reason: impl std::fmt::Display) -> RegistryError {
        RegistryError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            format!("Invalid schema: {reason}"),
        )
    }

    /// 42202.
    pub fn invalid_version(version: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
            format!(
                "The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )
    }

    /// 42203.
    pub fn invalid_compatibility(level: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42203,
            format!(
                "Invalid compatibility level '{level}'. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"
            ),
        )
    }

    /// 42204.
    pub fn invalid_mode(mode: &str) -> RegistryError {
        RegistryError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42204,
            format!(
                "Invalid mode '{mode}'. Valid values are READWRITE, READONLY, READONLY_OVERRIDE and IMPORT"
            ),
        )
    }

    /// 42205.
    pub fn not_permitted(reason: impl Into<String>) -> RegistryError {
        RegistryError::new(StatusCode::UNPROCESSABLE_ENTITY, 42205, reason)
    }

    /// 42206.
    pub fn reference_exists(subject: &str, version: i32) -> RegistryError {
        RegistryError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42206,
            format!(
                "One or more references exist to the schema {{magic=1,keytype=SCHEMA,subject={subject},version={version}}}."
            ),
        )
    }

    /// 422 for a request body of the wrong shape (unknown fields, wrong types).
    pub fn unprocessable(reason: impl Into<String>) -> RegistryError {
        RegistryError::new(StatusCode::UNPROCESSABLE_ENTITY, 422, reason)
    }

    /// 400 for a body that is not JSON at all.
    pub fn bad_request(reason: impl Into<String>) -> RegistryError {
        RegistryError::new(StatusCode::BAD_REQUEST, 400, reason)
    }

    /// 401 for a request without valid credentials: Confluent's body, the same whatever was
    /// wrong with them (the server logs why).
    pub fn unauthorized() -> RegistryError {
        RegistryError::new(StatusCode::UNAUTHORIZED, 401, "Unauthorized")
    }

    /// 403 for a principal the ACLs do not allow: Confluent's 40301.
    pub fn forbidden(message: String) -> RegistryError {
        RegistryError::new(StatusCode::FORBIDDEN, 40301, message)
    }

    /// 406: no media type the registry produces is acceptable (Jersey's answer, through
    /// Confluent's exception mapper).
    pub fn not_acceptable() -> RegistryError {
        RegistryError::new(StatusCode::NOT_ACCEPTABLE, 406, "HTTP 406 Not Acceptable")
    }

    /// 415: the request body's media type is not one the registry reads.
    pub fn unsupported_media_type() -> RegistryError {
        RegistryError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            415,
            "HTTP 415 Unsupported Media Type",
        )
    }

    /// 404 for paths the registry does not serve, and for path parameters Jersey cannot
    /// convert (a schema id that is not a 32-bit integer).
    pub fn no_such_path() -> RegistryError {
        RegistryError::new(StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found")
    }

    /// 50001: the store failed (the `_schemas` append did not become durable).
    pub fn store(reason: impl std::fmt::Display) -> RegistryError {
        RegistryError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            50001,
            format!("Error in the backend data store: {reason}"),
        )
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error_code": self.code, "message": self.message });
        crate::api::json_response(self.status, &body)
    }
}
