//! AWS credentials that are fixed values, for signing tokens the stand-in checks.

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// An AWS configuration that signs with fixed credentials in `region` and reads nothing from
/// the host (no environment variables, profiles or instance metadata): what a client of the
/// stand-in, the benchmark and tests sign tokens with. Uses the system clock.
pub async fn fixed_credentials(
    region: &str,
    access_key_id: &str,
    secret_access_key: &str,
    session_token: Option<&str>,
) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .empty_test_environment()
        .region(Region::new(region.to_owned()))
        .credentials_provider(aws_credential_types::Credentials::new(
            access_key_id,
            secret_access_key,
            session_token.map(str::to_owned),
            None,
            "fixed",
        ))
        .load()
        .await
}
