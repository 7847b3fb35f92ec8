//! Accounts: who may sign in and how. The SQL lives in [`crate::store::account`]; this module
//! holds what is not storage: the password format ([`password`]), the shapes of generated
//! secrets (invite codes, email tokens, refresh-token ids), the reserved signing keys kept on
//! disk ([`reserved_keys`]) and the reference PDS's time limits.
//!
//! Every generated secret comes from the thread CSPRNG (`rand::random`, OS-seeded ChaCha).

pub mod password;
pub mod reserved_keys;

use chrono::TimeDelta;

/// How long an email token (confirm, update, reset, delete, PLC op) stays valid.
pub const EMAIL_TOKEN_TTL: TimeDelta = TimeDelta::minutes(15);

/// How long a rotated refresh token keeps working after its successor was issued, so that
/// racing clients (or a lost response) do not log the user out.
pub const REFRESH_GRACE: TimeDelta = TimeDelta::hours(2);

/// Lifetime of a refresh token (the reference's 90 days).
pub const REFRESH_TOKEN_TTL: TimeDelta = TimeDelta::days(90);

/// The `createdBy` / `forAccount` value of invite codes minted by the administrator.
pub const ADMIN_INVITE_ACCOUNT: &str = "admin";

/// A fresh invite code as the reference mints them: the service hostname with `.` replaced by
/// `-`, then two groups of five lowercase base32 characters (`pds-example-com-abcde-23456`).
pub fn generate_invite_code(hostname: &str) -> String {
    let token = password::random_base32(10);
    format!(
        "{}-{}-{}",
        hostname.replace('.', "-"),
        &token[..5],
        &token[5..]
    )
}

/// A fresh email token: ten uppercase base32 characters as `XXXXX-XXXXX` (50 bits; tokens
/// live 15 minutes and are bound to one account and purpose).
pub fn generate_email_token() -> String {
    let token = password::random_base32(10).to_ascii_uppercase();
    format!("{}-{}", &token[..5], &token[5..])
}

/// The stored form of a user-typed email token: trimmed and upper-cased, because the reference
/// compares tokens case-insensitively by upper-casing the input.
pub fn normalize_email_token(input: &str) -> String {
    input.trim().to_ascii_uppercase()
}

/// A fresh refresh-token id (the JWT `jti`): 32 random bytes, base64 without padding.
pub fn generate_refresh_token_id() -> String {
    data_encoding::BASE64_NOPAD.encode(&rand::random::<[u8; 32]>())
}

/// Emails are compared and stored lower-cased, as the reference does.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}
