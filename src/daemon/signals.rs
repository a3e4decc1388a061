//! SIGTERM and SIGINT: the first asks the daemon to drain, a second one (while it drains)
//! asks to stop at once. Both are futures; `main` decides what stopping means.

use tokio::sync::oneshot;
use tracing::{info, warn};

/// A pair of futures: the first signal, and a second signal after it.
pub fn first_and_second() -> (
    impl Future<Output = ()> + Send + 'static,
    impl Future<Output = ()> + Send + 'static,
) {
    let (first_seen, after_first) = oneshot::channel::<()>();
    let first = async move {
        wait_signal().await;
        info!("signal received: draining (a second signal exits at once)");
        let _ = first_seen.send(());
    };
    let second = async move {
        if after_first.await.is_err() {
            // The first future was dropped without a signal: no second one will come.
            std::future::pending::<()>().await;
        }
        wait_signal().await;
        warn!("second signal: exiting now");
    };
    (first, second)
}

/// Resolves on SIGTERM or SIGINT.
pub async fn wait_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
