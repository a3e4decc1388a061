//! A metrics endpoint served by the test itself, standing for the application a real
//! Prometheus scrapes: it serves whatever its body function returns, at every path, or
//! answers 503 (the application is down) when the function returns `None`. It runs on its
//! own thread, so it keeps answering while the test blocks (on helm, say).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the endpoint serves: the body in Prometheus text format, or `None` for "down".
pub type Body = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// An HTTP endpoint on a free loopback port; stops when dropped.
pub struct Exporter {
    /// `127.0.0.1:<port>`.
    pub address: String,
    body: Arc<Mutex<Body>>,
    stop: Arc<AtomicBool>,
}

fn serve(mut stream: TcpStream, body: &Mutex<Body>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 4096];
    let _ = stream.read(&mut buf);
    let current = body.lock().map(|b| b.clone());
    let response = match current.ok().and_then(|f| f()) {
        Some(body) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        None => {
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_string()
        }
    };
    let _ = stream.write_all(response.as_bytes());
}

impl Exporter {
    /// Serves `body` (Prometheus text format).
    pub fn start(body: &str) -> Self {
        let text = body.to_string();
        Self::start_with(Arc::new(move || Some(text.clone())))
    }

    /// Serves what `body` returns at each scrape.
    pub fn start_with(body: Body) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind exporter");
        let address = listener.local_addr().expect("exporter address").to_string();
        let shared = Arc::new(Mutex::new(body));
        let stop = Arc::new(AtomicBool::new(false));
        let (served, stopped) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    serve(stream, &served);
                }
            }
        });
        Self {
            address,
            body: shared,
            stop,
        }
    }

    /// Replaces what is served.
    pub fn set(&self, body: &str) {
        let text = body.to_string();
        self.set_with(Arc::new(move || Some(text.clone())));
    }

    /// Replaces the body function.
    pub fn set_with(&self, body: Body) {
        if let Ok(mut b) = self.body.lock() {
            *b = body;
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.address);
    }
}
