//! A loopback TCP proxy in front of a real server (the API server), so one process under
//! test can be cut off from it without disturbing the others sharing the stack: `cut`
//! closes every open connection and refuses new ones until `restore`; `freeze` keeps every
//! connection open but forwards nothing (a half-open connection, as a dead NAT entry or a
//! frozen server gives), until `thaw` closes those and forwards again.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A proxy on a free loopback port; stops accepting when dropped.
pub struct Proxy {
    /// `127.0.0.1:<port>`.
    pub address: String,
    cut: Arc<AtomicBool>,
    frozen: Arc<AtomicBool>,
    /// When the client closed a connection while it was frozen.
    closed_while_frozen: Arc<Mutex<Vec<Instant>>>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

/// The client side of a pump: reports a close while frozen.
struct ClientSide {
    closed_while_frozen: Arc<Mutex<Vec<Instant>>>,
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    frozen: Arc<AtomicBool>,
    client: Option<ClientSide>,
) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                if frozen.load(Ordering::SeqCst)
                    && let Some(c) = &client
                    && let Ok(mut closed) = c.closed_while_frozen.lock()
                {
                    closed.push(Instant::now());
                }
                break;
            }
            // Frozen: what is read goes nowhere, as on a dead path.
            Ok(_) if frozen.load(Ordering::SeqCst) => {}
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl Proxy {
    /// Forwards to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let address = listener.local_addr().expect("proxy address").to_string();
        let cut = Arc::new(AtomicBool::new(false));
        let frozen = Arc::new(AtomicBool::new(false));
        let closed_while_frozen = Arc::new(Mutex::new(Vec::new()));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, o, s, up, f, cwf) = (
            cut.clone(),
            open.clone(),
            stop.clone(),
            upstream.to_string(),
            frozen.clone(),
            closed_while_frozen.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if c.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&up) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                if let (Ok(c2), Ok(s2), Ok(mut list)) =
                    (client.try_clone(), server.try_clone(), o.lock())
                {
                    list.push(c2);
                    list.push(s2);
                }
                let (c3, s3) = match (client.try_clone(), server.try_clone()) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => continue,
                };
                let (f1, f2) = (f.clone(), f.clone());
                let side = ClientSide {
                    closed_while_frozen: cwf.clone(),
                };
                std::thread::spawn(move || pump(client, server, f1, Some(side)));
                std::thread::spawn(move || pump(s3, c3, f2, None));
            }
        });
        Self {
            address,
            cut,
            frozen,
            closed_while_frozen,
            open,
            stop,
        }
    }

    /// Keeps every connection open but forwards nothing, in either direction.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// When the client first closed a connection while frozen (it noticed the silence).
    pub fn first_close_while_frozen(&self) -> Option<Instant> {
        self.closed_while_frozen
            .lock()
            .ok()
            .and_then(|c| c.first().copied())
    }

    /// Closes the connections that were frozen and forwards new ones again.
    pub fn thaw(&self) {
        if let Ok(mut list) = self.open.lock() {
            for s in list.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        self.frozen.store(false, Ordering::SeqCst);
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        if let Ok(mut list) = self.open.lock() {
            for s in list.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.address);
    }
}
