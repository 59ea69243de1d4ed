//! Multipart request bodies (`add`, `block/put`, `dag/put`, `dag/import`, `pubsub/pub`).

use super::error::ApiError;

/// A multipart body, or the 400 JSON error that says why it is not one.
pub(crate) fn multipart(
    body: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<axum::extract::Multipart, ApiError> {
    body.map_err(|e| ApiError::bad_request(format!("expected a multipart/form-data body: {e}")))
}

/// The bytes of the first part of a multipart body; `what` names it in the error.
pub(crate) async fn first_part(
    multipart: &mut axum::extract::Multipart,
    what: &str,
) -> Result<axum::body::Bytes, ApiError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::bad_request(format!("bad multipart body: {e}"))
    };
    let field = multipart
        .next_field()
        .await
        .map_err(bad)?
        .ok_or_else(|| ApiError::bad_request(format!("{what} is required as a file part")))?;
    field.bytes().await.map_err(bad)
}
