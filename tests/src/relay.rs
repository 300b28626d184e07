//! [`Relay`]: a TCP relay on loopback that records what crosses it both ways, and can be
//! pointed at another server mid-test, as an eavesdropper or a man in the middle would.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::DEADLINE;

/// A recording relay, stopped on drop.
pub struct Relay {
    /// Where clients connect.
    pub addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    recorded: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    /// A relay to `target`.
    pub fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let relay = Relay {
            addr,
            target: Arc::new(Mutex::new(target)),
            recorded: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (target, recorded, stop) = (
            Arc::clone(&relay.target),
            Arc::clone(&relay.recorded),
            Arc::clone(&relay.stop),
        );
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let to = *target.lock().unwrap();
                let Ok(server) = TcpStream::connect(to) else {
                    continue;
                };
                for (from, into) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let recorded = Arc::clone(&recorded);
                    thread::spawn(move || pump(from, into, &recorded));
                }
            }
        });
        relay
    }

    /// Sends the connections made from now on to `target`.
    pub fn point_to(&self, target: SocketAddr) {
        *self.target.lock().unwrap() = target;
    }

    /// Everything that crossed the relay so far, both ways.
    pub fn recorded(&self) -> Vec<u8> {
        self.recorded.lock().unwrap().clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, DEADLINE);
    }
}

/// Copies `from` to `into`, recording, until either side ends.
fn pump(mut from: TcpStream, mut into: TcpStream, recorded: &Mutex<Vec<u8>>) {
    let _ = from.set_read_timeout(Some(DEADLINE));
    let mut buf = vec![0; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                recorded.lock().unwrap().extend_from_slice(&buf[..n]);
                if into.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = into.shutdown(Shutdown::Write);
}
