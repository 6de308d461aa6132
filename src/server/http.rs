//! What every route shares: errors as JSON, the token check, the one-line request log, and
//! reading a JSON body with a clear error.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::server::AppState;
use crate::server::worker::JobError;

/// Seconds a client refused for a full queue is told to wait.
pub const RETRY_AFTER_SECS: u64 = 2;

/// An error response: `{"error": {"message", "type"}}`, the OpenAI shape, so the remote
/// engine reads the message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn busy() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is busy: too many requests are waiting for the model; retry later",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::SERVICE_UNAVAILABLE => "busy",
            StatusCode::GATEWAY_TIMEOUT => "timeout",
            s if s.is_client_error() => "invalid_request",
            _ => "server_error",
        }
    }

    /// The JSON an error has, also sent as a stream's last event.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.message, "type": self.kind()}})
    }
}

impl From<JobError> for ApiError {
    fn from(error: JobError) -> Self {
        let status = match error {
            JobError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            // The client is gone; nobody reads this.
            JobError::Cancelled => StatusCode::REQUEST_TIMEOUT,
            JobError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            JobError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        let headers = response.headers_mut();
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

/// A JSON body, or a 4xx whose message says what is wrong with it (413 when too large).
pub fn json_body<T: DeserializeOwned>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match body {
        Ok(Json(value)) => Ok(value),
        Err(rejection) => {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "the request body is larger than the server accepts".to_string()
            } else {
                one_line(&rejection.body_text())
            };
            Err(ApiError::new(status, message))
        }
    }
}

fn one_line(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    line.trim().to_string()
}

/// Refuses a request without the server's token (when it has one) with 401.
pub async fn authorize(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match &state.config.token {
        Some(token) if !bearer_matches(request.headers(), token) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this server needs 'Authorization: Bearer <token>'",
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// Whether the request carries `Bearer <token>`, compared in constant time.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (given, token) = (given.trim().as_bytes(), token.as_bytes());
    given.len() == token.len() && given.iter().zip(token).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
}

/// One log line per request: method, path, status, time to the response head. A request
/// whose client left before the response is logged as 499 (nginx's "client closed").
pub async fn log_request(request: Request, next: Next) -> Response {
    let mut line = RequestLine {
        method: request.method().to_string(),
        path: request.uri().path().to_string(),
        started: Instant::now(),
        status: None,
    };
    let response = next.run(request).await;
    line.status = Some(response.status().as_u16());
    response
}

/// Logs when dropped, so a request whose handler was dropped is logged too.
struct RequestLine {
    method: String,
    path: String,
    started: Instant,
    status: Option<u16>,
}

impl Drop for RequestLine {
    fn drop(&mut self) {
        tracing::info!(
            target: "nano_analyst::serve",
            "{} {} {} {} ms",
            self.method,
            self.path,
            self.status.unwrap_or(499),
            self.started.elapsed().as_millis()
        );
    }
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint; see docs/serve.md")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let mut headers = HeaderMap::new();
        assert!(!bearer_matches(&headers, "secret-token-123456"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer nope"),
        );
        assert!(!bearer_matches(&headers, "secret-token-123456"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic secret-token-123456"),
        );
        assert!(!bearer_matches(&headers, "secret-token-123456"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer secret-token-123456"),
        );
        assert!(bearer_matches(&headers, "secret-token-123456"));
    }

    #[test]
    fn a_full_queue_answers_503_with_retry_after() {
        let response = ApiError::busy().into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
