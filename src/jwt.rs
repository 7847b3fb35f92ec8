//! JWS tokens: placeholder.
