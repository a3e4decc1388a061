//! A metrics endpoint served by the test itself, standing for the application a real
//! Prometheus scrapes: whatever text it is given is served at every path. It runs on its
//! own thread, so it keeps answering while the test blocks (on helm, say).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An HTTP endpoint on a free loopback port; stops when dropped.
pub struct Exporter {
    /// `127.0.0.1:<port>`.
    pub address: String,
    body: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
}

fn serve(mut stream: TcpStream, body: &Mutex<String>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 4096];
    let _ = stream.read(&mut buf);
    let body = body.lock().map(|b| b.clone()).unwrap_or_default();
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

impl Exporter {
    /// Serves `body` (Prometheus text format).
    pub fn start(body: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind exporter");
        let address = listener.local_addr().expect("exporter address").to_string();
        let shared = Arc::new(Mutex::new(body.to_string()));
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
        if let Ok(mut b) = self.body.lock() {
            *b = body.to_string();
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
