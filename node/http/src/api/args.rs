//! A call's query parameters, as [`Args`]: in order, repeated keys kept, read with Kubo's
//! rules (flags, numbers, options the node supports).

use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;

/// The most query parameters one request may carry.
pub const MAX_ARGS: usize = 256;

/// The query parameters of a call, in order, repeated keys kept.
#[derive(Debug, Default)]
pub struct Args(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Args {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let mut args = Vec::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if args.len() == MAX_ARGS {
                return Err(ApiError::bad_request(format!(
                    "too many arguments (at most {MAX_ARGS})"
                )));
            }
            args.push((k.into_owned(), v.into_owned()));
        }
        Ok(Self(args))
    }
}

impl Args {
    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The required first `arg`.
    pub fn arg(&self) -> Result<&str, ApiError> {
        self.get("arg")
            .ok_or_else(|| ApiError::bad_request("argument \"arg\" is required"))
    }

    /// A boolean flag (`true`/`false`, or present without value for true).
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some("" | "true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!(
                "{key}: {other:?} is not a boolean"
            ))),
        }
    }

    /// Refuses `key` unless it is absent or one of `supported`: an option the node does not
    /// implement is an error, never silently ignored.
    pub fn only(&self, key: &str, supported: &[&str]) -> Result<(), ApiError> {
        for v in self.all(key) {
            if !supported.contains(&v) {
                return Err(ApiError::bad_request(format!(
                    "{key}={v:?} is not supported (supported: {})",
                    supported.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// A number, if given.
    pub fn num<T: FromStr>(&self, key: &str) -> Result<Option<T>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::bad_request(format!("{key}: {v:?} is not a number")))
            })
            .transpose()
    }
}
