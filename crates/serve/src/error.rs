//! OpenAI-style error responses.

use super::*;

/// An OpenAI-style error response.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) param: Option<String>,
    pub(crate) kind: &'static str,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        message: impl Into<String>,
        param: Option<&str>,
        kind: &'static str,
    ) -> Self {
        Self {
            status,
            message: message.into(),
            param: param.map(str::to_string),
            kind,
        }
    }

    pub(crate) fn bad(message: impl Into<String>, param: Option<&str>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            message,
            param,
            "invalid_request_error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.status.as_u16(),
            }
        });
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}
