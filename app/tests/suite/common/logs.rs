//! Log capture for the tests that check what the app logs: the app's own logging layer
//! ([`app::logging::layer`]) writing into memory, for one test only. The test runs on a tokio
//! runtime of its own whose every thread (workers, blocking pool, the test's own) has the
//! capturing subscriber as its default, so the capture sees every event of the test's tasks
//! and none of the other tests running in the same binary at the same time.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

/// Every line logged so far by one test, in memory.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8")
    }
}

/// Runs `test` on a runtime of its own (two workers) whose threads log through the app's
/// logging layer filtered by `directives` into the [`Captured`] that `test` is handed.
pub fn capturing<F, Fut>(directives: &str, test: F)
where
    F: FnOnce(Captured) -> Fut,
    Fut: Future<Output = ()>,
{
    let captured = Captured::default();
    let writer = captured.clone();
    let layer = app::logging::layer(directives, move || writer.clone()).expect("valid directives");
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    let for_threads = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // The runtime's threads end with it; the default lives as long as each thread.
            std::mem::forget(tracing::dispatcher::set_default(&for_threads));
        })
        .build()
        .expect("a runtime for the test");
    let _default = tracing::dispatcher::set_default(&dispatch);
    runtime.block_on(test(captured));
}
