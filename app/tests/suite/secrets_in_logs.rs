//! No password or token ends up in a log line, whatever the log level.

use crate::common;

#[cfg(feature = "front-door")]
use std::sync::{Arc, Mutex};
#[cfg(feature = "front-door")]
use std::time::Duration;

#[cfg(feature = "front-door")]
use app::dsql::token::{IamTokenSource, Token, TokenSource};
#[cfg(feature = "front-door")]
use common::clock::{new_connection, refreshes};
#[cfg(feature = "front-door")]
use common::database_with_user;
use common::logs::capturing;
use common::{admin_db, fresh_database, server};
use secrecy::ExposeSecret;
#[cfg(feature = "front-door")]
use secrecy::SecretString;

/// Every event at every level the app lets through: the app's own logging at its most verbose,
/// with a directive that tries to lift the cap on aws_sigv4's module that prints the signed
/// request.
const EVERYTHING: &str = "trace,aws_sigv4::http_request=trace";

#[test]
fn no_password_appears_in_any_log_line_of_a_run() {
    capturing(EVERYTHING, |captured| async move {
        let server = server().await;
        let database = fresh_database("no_secret_in_logs").await;
        let user = app::users::onboard_local(server, &database, "clinic_log_user")
            .await
            .expect("onboard");
        let db = admin_db(&database).await;
        app::demo::migrate(&db).await.expect("migrate");
        let policy = app::dsql::retry::RetryPolicy::default();
        app::demo::run(&db, &policy, |line| tracing::info!("{line}"))
            .await
            .expect("demo");

        let log = captured.text();
        assert!(
            log.contains("INSERT INTO"),
            "statements were logged and captured"
        );
        for secret in [
            server.admin().password.expose_secret(),
            user.password.expose_secret(),
        ] {
            assert!(!log.contains(secret), "a password appears in the log");
        }
    });
}

/// The session token of the fake AWS credentials below.
#[cfg(feature = "front-door")]
const SESSION_TOKEN: &str = "fake-session-token";

/// Asserts that `log` holds no part of the signature of the IAM token `token`: the signature
/// alone is enough to replay the token.
#[cfg(feature = "front-door")]
fn assert_no_signature_of(token: &str, log: &str) {
    let signature = token
        .rsplit("X-Amz-Signature=")
        .next()
        .expect("a signature");
    assert!(
        !log.contains(&signature[..20]),
        "a token's signature appears in the log"
    );
}

/// The app's IAM token source, keeping every token it issued.
#[cfg(feature = "front-door")]
struct Recorded {
    signer: IamTokenSource,
    issued: Arc<Mutex<Vec<SecretString>>>,
}

#[cfg(feature = "front-door")]
impl TokenSource for Recorded {
    async fn token(&self) -> app::dsql::Result<Token> {
        let token = self.signer.token().await?;
        self.issued
            .lock()
            .expect("issued")
            .push(token.secret.clone());
        Ok(token)
    }
}

/// Real DSQL IAM tokens (signed with a session token), checked by the front door as DSQL checks
/// them, refreshed twice (the test's clock brings each refresh) with a new connection logging
/// in after each: every token the pool logs in with or refreshes to is looked for in the log,
/// with the secret key and the session token that signed it.
#[cfg(feature = "front-door")]
#[test]
fn no_iam_token_or_aws_secret_appears_in_any_log_line_while_the_pool_refreshes() {
    capturing(EVERYTHING, |captured| async move {
        let door = common::door::door().await;
        let (database, user) = database_with_user("iam_tokens_in_logs").await;
        let signer = common::door::signer(
            &door.access_key_id,
            &user.user,
            &door.secret,
            Some(SESSION_TOKEN),
            Duration::from_secs(900),
        )
        .await;
        let issued = Arc::new(Mutex::new(Vec::new()));
        let source = Recorded {
            signer,
            issued: Arc::clone(&issued),
        };
        let (pool, clock) = door
            .pool_on_manual_clock(&database, &user.user, source)
            .await;
        let status = pool.status();
        let db = pool.database();
        app::demo::migrate(&db).await.expect("migrate as the user");
        let policy = app::dsql::retry::RetryPolicy::default();
        for refresh in 1..=2 {
            app::demo::run(&db, &policy, |line| tracing::info!("{line}"))
                .await
                .expect("demo");
            clock.advance_once_asleep(Duration::from_secs(900)).await;
            refreshes(&status, refresh).await;
            // A connection that logs in with the new token.
            drop(new_connection(pool.pool()).await);
        }
        app::demo::run(&db, &policy, |line| tracing::info!("{line}"))
            .await
            .expect("demo");
        assert_eq!(status.failures(), 0, "every refresh succeeded");
        pool.close().await;

        let log = captured.text();
        assert!(
            log.contains("connected"),
            "the pool's log lines were captured"
        );
        let tokens = issued.lock().expect("issued").clone();
        assert!(tokens.len() >= 3, "one token at connect and two refreshes");
        for token in &tokens {
            assert!(
                token.expose_secret().contains("Action=DbConnect&"),
                "a real IAM token"
            );
            assert!(
                !log.contains(token.expose_secret()),
                "a token appears in the log"
            );
            assert_no_signature_of(token.expose_secret(), &log);
        }
        for secret in [door.secret.expose_secret(), SESSION_TOKEN] {
            assert!(
                !log.contains(secret),
                "an AWS credential appears in the log"
            );
        }
    });
}

/// A refused login tells the client nothing of why (`hostile_login.rs`); the front door's own
/// log says which check failed, without the token.
#[cfg(feature = "front-door")]
#[test]
fn a_refused_login_logs_which_check_failed_but_not_the_token() {
    capturing(EVERYTHING, |captured| async move {
        let door = common::door::door().await;
        let (database, user) = database_with_user("refusal_reason_in_logs").await;
        let forged = door
            .tokens(
                &user.user,
                &app::local::random_secret(),
                Duration::from_secs(900),
            )
            .await;
        let token = forged.token().await.expect("a token");
        let options = door
            .options(&database, &user.user)
            .password(token.secret.expose_secret());
        <sqlx::PgConnection as sqlx::Connection>::connect_with(&options)
            .await
            .expect_err("a token signed with another secret is refused");
        let log = captured.text();
        let refused = log
            .lines()
            .find(|line| line.contains("front door refused a login"))
            .unwrap_or_else(|| panic!("the refusal is logged: {log}"));
        assert!(
            refused.contains("signature does not match") && refused.contains(&user.user),
            "{refused}"
        );
        assert_no_signature_of(token.secret.expose_secret(), &log);
    });
}
