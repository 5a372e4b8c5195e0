//! Log capture for the tests that check what the app logs: the app's own logging layer
//! ([`app::logging::layer`]) writing into memory, installed as the process-wide subscriber (a
//! thread-scoped one misses events from the runtime's other threads, and from other tests).

use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;

/// Every line logged so far, in memory.
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

/// The test binary's capture, installed on first use with the app's logging layer filtered
/// by `directives` (a test binary uses one set of directives: later calls get the first).
pub fn captured(directives: &str) -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let layer =
            app::logging::layer(directives, move || writer.clone()).expect("valid directives");
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("the only subscriber");
        captured
    })
}
