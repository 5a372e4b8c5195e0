//! What the app logs when `RUST_LOG` is unset ([`app::logging::DEFAULT_DIRECTIVES`]): a retry
//! that succeeds is not shown; a retry that gives up, and a token refresh that fails, are.
#![cfg(feature = "front-door")]

use crate::common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use app::dsql::pool::PoolSettings;
use app::dsql::pool::{RefreshPolicy, RefreshingPool};
use app::dsql::token::{Token, TokenSource};

use migration::dsql::retry_on_conflict;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use app::logging::DEFAULT_DIRECTIVES;
use common::logs::capturing;
use common::{eventually, fresh_database, server};

/// A statement that fails with SQLSTATE 40001 the first `failures` times it runs: a
/// serialization failure raised by the server, as DSQL raises its conflicts.
const CONFLICT: &str =
    "DO $$ BEGIN RAISE EXCEPTION 'conflict (OC000)' USING ERRCODE = '40001'; END $$";

#[test]
fn a_conflict_retried_away_is_quiet_and_one_that_persists_warns() {
    capturing(DEFAULT_DIRECTIVES, |captured| async move {
        let database = fresh_database("default_logging").await;
        // Directly to the server: the front door refuses DO, which only raises the conflict here.
        let db = common::direct_admin_db(&database).await;
        let conflict = Statement::from_string(DbBackend::Postgres, CONFLICT);
        let ok = Statement::from_string(DbBackend::Postgres, "SELECT 1");

        let attempts = AtomicU32::new(0);
        retry_on_conflict("settles", || {
            let statement = if attempts.fetch_add(1, Ordering::Relaxed) < 2 {
                conflict.clone()
            } else {
                ok.clone()
            };
            let db = &db;
            async move { db.execute_raw(statement).await }
        })
        .await
        .expect("the third attempt succeeds");
        assert_eq!(attempts.load(Ordering::Relaxed), 3);
        assert!(!captured.text().contains("settles"), "{}", captured.text());

        let attempts = AtomicU32::new(0);
        let error = retry_on_conflict("persists", || {
            attempts.fetch_add(1, Ordering::Relaxed);
            db.execute_raw(conflict.clone())
        })
        .await
        .expect_err("every attempt conflicts");
        assert_eq!(migration::dsql::sqlstate(&error).as_deref(), Some("40001"));
        assert_eq!(
            attempts.load(Ordering::Relaxed),
            migration::dsql::MAX_ATTEMPTS
        );
        let logged = captured.text();
        let warning = logged
            .lines()
            .find(|line| line.contains("persists"))
            .unwrap_or_else(|| panic!("no warning for the persisting conflict:\n{logged}"));
        assert!(warning.contains("WARN"), "{warning}");
        assert!(warning.contains("giving up"), "{warning}");
    });
}

/// Admin's password once, valid for a moment, then a failure on every refresh.
struct FailsAfterFirst {
    password: secrecy::SecretString,
    calls: AtomicU32,
}

impl TokenSource for FailsAfterFirst {
    async fn token(&self) -> app::dsql::Result<Token> {
        if self.calls.fetch_add(1, Ordering::Relaxed) == 0 {
            Ok(Token {
                secret: self.password.clone(),
                valid_for: Some(Duration::from_millis(200)),
            })
        } else {
            Err(app::dsql::Error::Token(
                "the credential service is down".to_owned(),
            ))
        }
    }
}

#[test]
fn a_failed_token_refresh_warns() {
    capturing(DEFAULT_DIRECTIVES, |captured| async move {
        let database = fresh_database("refresh_warns").await;
        let server = server().await;
        let admin = server.admin();
        let source = FailsAfterFirst {
            password: admin.password.clone(),
            calls: AtomicU32::new(0),
        };
        let policy = RefreshPolicy {
            at_fraction: 0.5,
            retry_initial: Duration::from_millis(50),
            retry_max: Duration::from_millis(100),
        };
        let pool = RefreshingPool::connect(
            server.connect_options(&database, admin),
            None,
            &PoolSettings::default(),
            source,
            policy,
        )
        .await
        .expect("the pool connects with the first token");
        let warning = eventually(
            Duration::from_secs(30),
            "a warning that the token refresh failed",
            || async {
                captured
                    .text()
                    .lines()
                    .find(|line| line.contains("token refresh failed"))
                    .map(str::to_owned)
            },
        )
        .await;
        assert!(warning.contains("WARN"), "{warning}");
        pool.close().await;
    });
}
