//! No password or token ends up in a log line, whatever the log level.

mod common;

use std::sync::{Arc, Mutex};

use common::{admin_db, fresh_database, server};
use migration::{Migrator, MigratorTrait};

/// Collects every log line, from every target and level, into memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_password_appears_in_any_log_line_of_a_run() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // Global, in a test binary of its own: a thread-scoped subscriber misses events when
    // other tests run at the same time.
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let server = server().await;
    let database = fresh_database("no_secret_in_logs").await;
    let user = server
        .create_user(&database, "clinic_log_user")
        .await
        .expect("onboard");
    let db = admin_db(&database).await;
    Migrator::up(&db, None).await.expect("migrate");
    let policy = app::retry::RetryPolicy::default();
    app::demo::run(&db, &policy, |line| tracing::info!("{line}"))
        .await
        .expect("demo");

    let log = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(
        log.contains("INSERT INTO"),
        "statements were logged and captured"
    );
    for secret in [server.admin().password.expose(), user.password.expose()] {
        assert!(!log.contains(secret), "a password appears in the log");
    }
}
