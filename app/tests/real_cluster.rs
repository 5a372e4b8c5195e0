//! The demo and the token refresh against a real Aurora DSQL cluster. Run only when
//! `CLUSTER_ENDPOINT` is set (with AWS credentials in the default chain); otherwise each test
//! prints why it did nothing. As `admin`, and also as `CLUSTER_USER` when that is another user
//! (onboard it first with `app user create NAME --iam-role ARN`).

use std::io::Write;
use std::time::Duration;

use app::config::{ADMIN_USER, Config};
use app::retry::RetryPolicy;
use app::session::Session;

/// The configuration for `user`, from the environment, or `None` (with the reason printed) when
/// no cluster is configured.
fn cluster_config(user: &str, extra: &[(&str, &str)]) -> Option<Config> {
    if std::env::var_os("CLUSTER_ENDPOINT").is_none() {
        // Written to the stderr handle itself, which the test harness does not capture, so the
        // reason shows in every run.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: CLUSTER_ENDPOINT is not set. To run this test against Aurora DSQL, set \
             CLUSTER_ENDPOINT (and AWS credentials; CLUSTER_USER for a non-admin run)."
        );
        return None;
    }
    let config = Config::from_vars(|name| {
        extra
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
            .or_else(|| (name == "CLUSTER_USER").then(|| user.to_owned()))
            .or_else(|| std::env::var(name).ok())
    })
    .expect("a valid cluster configuration");
    Some(config)
}

/// `admin`, and `CLUSTER_USER` if it names someone else.
fn users() -> Vec<String> {
    let mut users = vec![ADMIN_USER.to_owned()];
    if let Ok(user) = std::env::var("CLUSTER_USER")
        && user != ADMIN_USER
        && !user.is_empty()
    {
        users.push(user);
    }
    users
}

#[tokio::test]
async fn the_demo_runs_on_a_real_cluster() {
    for user in users() {
        let Some(config) = cluster_config(&user, &[]) else {
            return;
        };
        let session = Session::open(&config)
            .await
            .expect("connect to the cluster");
        let db = session.db();
        app::demo::migrate(&db).await.expect("migrate");
        let mut lines = Vec::new();
        let summary = app::demo::run(&db, &RetryPolicy::default(), |line| lines.push(line))
            .await
            .unwrap_or_else(|e| panic!("demo as {user}: {e}"));
        assert_eq!(lines.len(), 12, "{lines:#?}");
        assert_eq!(summary.visit_count, 2);
        assert_eq!(summary.deleted, 12);
        session.close().await;
    }
}

#[tokio::test]
async fn the_pool_refreshes_its_token_on_a_real_cluster() {
    for user in users() {
        let Some(config) = cluster_config(&user, &[("DSQL_TOKEN_LIFETIME_SECS", "10")]) else {
            return;
        };
        let session = Session::open(&config)
            .await
            .expect("connect to the cluster");
        let status = session.pool().status();
        tokio::time::timeout(Duration::from_secs(60), async {
            while status.successes() < 2 {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
        .await
        .expect("two refreshes within a minute of 10-second tokens");
        // A connection opened now must use a refreshed token: the first one has expired.
        let pool = session.pool().pool();
        let held = pool.acquire().await.expect("a connection").detach();
        drop(held);
        let mut fresh = pool
            .acquire()
            .await
            .expect("a new connection after the refresh");
        sqlx::query("SELECT 1")
            .execute(&mut *fresh)
            .await
            .expect("query");
        drop(fresh);
        session.close().await;
    }
}
